"""Neuron activations drawn three ways (from `Neurons.as_dict()`): a self-contained HTML page
(each token a span coloured by a unit's activation; hovering shows the value and the model's
most likely next tokens), text for a terminal (24-bit ANSI backgrounds), and a matplotlib
picture of the start of the text (.png or .svg). One diverging scale for all three: blue
negative, white 0, red positive. matplotlib is imported only when a picture is drawn."""

from __future__ import annotations

import html
import json
import os
import unicodedata
from pathlib import Path

import numpy as np

from charrnn.errors import CharrnnError, UsageError
from charrnn.files import io_error, temp_sibling

FORMATS = (".html", ".png", ".svg")
# ColorBrewer RdBu (9 classes), from -bound (blue) through 0 (white) to +bound (red)
SCALE = ("#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7")
SCALE += ("#fddbc7", "#f4a582", "#d6604d", "#b2182b")
PICTURE_CHARS = 1_500  # characters a picture shows at most (all its units together)
COLUMNS = 100  # characters per row of a picture (longer lines wrap)
TAB = 4  # a tab in a picture or on a terminal: spaces to the next multiple of this
RESET = "\x1b[0m"
_BIDI = set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_output(path: Path) -> str:
    """The output's format (html, png or svg), checked before the work."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            "--out", f"{path}: must be a .html, .png or .svg file", "use e.g. neurons.html"
        )
    if suffix != ".html":
        from charrnn.inspect import pictures

        return pictures.check_output(path)
    if not path.parent.is_dir():
        raise CharrnnError(str(path), "its folder does not exist", "create it, or write elsewhere")
    if path.is_dir():
        raise CharrnnError(str(path), "is a directory", "give a file name")
    return "html"


def colours(values, bound: float) -> np.ndarray:
    """RGB in [0, 1] (N, 3) of activations on the diverging scale from -bound to +bound."""
    anchors = np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in SCALE])
    at = (np.clip(np.asarray(values, dtype=np.float64) / bound, -1, 1) + 1) / 2
    at = at * (len(SCALE) - 1)
    low = np.minimum(at.astype(np.int64), len(SCALE) - 2)
    frac = (at - low)[:, None]
    return anchors[low] * (1 - frac) + anchors[low + 1] * frac


def _dark(rgb: np.ndarray) -> np.ndarray:
    """Which backgrounds need light text (N,)."""
    return rgb @ np.array([0.299, 0.587, 0.114]) < 0.5


def _hex(rgb: np.ndarray) -> list[str]:
    return ["#{:02x}{:02x}{:02x}".format(*row) for row in (rgb * 255).round().astype(int)]


def visible(text: str) -> str:
    """`text` with what would not show (or would move the cursor) drawn: a line break as
    the arrow ↵ or ␍, other control characters as their Unicode pictures, line and paragraph
    separators as ␤, and bidirectional overrides as U+FFFD."""
    out = []
    for c in text:
        if c == "\n":
            out.append("↵")
        elif c == "\t":
            out.append(c)
        elif c in _BIDI:
            out.append("\ufffd")
        elif unicodedata.category(c) == "Cc":
            code = ord(c)
            out.append(chr(0x2400 + code) if code < 32 else "␡" if code == 127 else "\ufffd")
        elif unicodedata.category(c) in ("Zl", "Zp"):
            out.append("␤")
        else:
            out.append(c)
    return "".join(out)


def spelled(token: str) -> str:
    """A predicted token as a tooltip shows it: visible, a space as ␣."""
    return visible(token).replace(" ", "␣")


# -- the page ----------------------------------------------------------------------------------


def _unit_label(unit: dict) -> str:
    tracked = [(name, r) for name, r in unit["r"].items() if r is not None]
    if not tracked:
        return unit["unit"]
    name, r = max(tracked, key=lambda item: abs(item[1]))
    return f"{unit['unit']} (r = {r:+.2f} with {name})"


def _page_data(found: dict) -> dict:
    units = []
    for unit in found["units"]:
        rgb = colours(unit["values"], found["bound"])
        units.append(
            {
                "unit": unit["unit"],
                "bg": _hex(rgb),
                "dark": "".join("1" if d else "0" for d in _dark(rgb)),
                "values": [round(v, 4) for v in unit["values"]],
                "r": {k: None if r is None else round(r, 3) for k, r in unit["r"].items()},
            }
        )
    return {
        "units": units,
        "tokens": [visible(piece) for piece in found["shown"]],
        "top": [
            [[spelled(t), round(p, 4), int(t == came)] for t, p in row]
            for row, came in zip(found["predictions"], [*found["shown"][1:], None], strict=True)
        ],
        "next": [None if p is None else round(p, 4) for p in found["next_p"]],
    }


def _script_json(data: dict) -> str:
    """JSON that is safe inside a <script> element (no </script>, no <!--)."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _spans(found: dict, data: dict) -> str:
    """The text: one span per token, coloured by the first unit (the script recolours)."""
    first, parts = data["units"][0], []
    for i, piece in enumerate(found["shown"]):
        style = f"background:{first['bg'][i]}" + (";color:#fff" if first["dark"][i] == "1" else "")
        body = html.escape(visible(piece))
        parts.append(f'<span data-i="{i}" style="{style}">{body}</span>')
        parts.append("\n" * piece.count("\n"))  # the arrows stay, and the lines break
    return "".join(parts)


def page(found: dict) -> str:
    """A self-contained HTML page (inline CSS and script, nothing fetched) of the text shown,
    coloured by each unit's activation; a menu picks the unit."""
    data = _page_data(found)
    options = "".join(
        f'<option value="{i}">{html.escape(_unit_label(u))}</option>'
        for i, u in enumerate(found["units"])
    )
    gradient = ", ".join(SCALE)
    bound = f"{found['bound']:.3g}"
    title = f"Neuron activations: {found['name']}"
    about = (
        f"{found['model']}, {found['num_layers']} x {found['hidden_size']}; each character "
        f"coloured by one unit's {found['state']} after reading it, blue negative, red "
        f"positive; the first {len(found['shown']):,} tokens of {found['text']}, read from a "
        f"zero state. r: the unit's correlation with a property of the text over "
        f"{found['read']:,} tokens. Hover over a character (click to pin) for its activation "
        "and the model's guesses at the next token."
    )
    return _PAGE.format(
        title=html.escape(title),
        about=html.escape(about),
        options=options,
        gradient=gradient,
        low=f"-{bound}",
        high=f"+{bound}",
        text=_spans(found, data),
        data=_script_json(data),
    )


def write_page(path: Path, text: str) -> None:
    """Write the page atomically: a temporary file beside it, renamed over it."""
    check_output(path)
    tmp = temp_sibling(path, "tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise io_error(path, e) from None


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 72em;
  padding: 0 1em; color: #222; }}
h1 {{ font-size: 1.3em; }}
p.about {{ color: #555; max-width: 60em; }}
.bar {{ display: inline-block; width: 12em; height: 0.9em; vertical-align: middle;
  background: linear-gradient(to right, {gradient}); border: 1px solid #ccc; }}
#text {{ font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 14px; line-height: 1.55; white-space: pre-wrap; overflow-wrap: anywhere;
  border-top: 1px solid #ddd; padding-top: 0.8em; tab-size: 4; }}
#text span:hover, #text span.pinned {{ outline: 1px solid #000; }}
#tip {{ position: absolute; display: none; background: #fff; border: 1px solid #999;
  box-shadow: 0 2px 6px rgba(0,0,0,.2); padding: 0.4em 0.6em; font: 13px ui-monospace,
  monospace; pointer-events: none; z-index: 1; white-space: pre; }}
#tip .p {{ display: inline-block; height: 0.7em; background: #4393c3; margin-left: 0.5em; }}
#tip .came {{ font-weight: bold; }}
#tracks {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>{title}</h1>
<p class="about">{about}</p>
<p><label>Unit <select id="unit">{options}</select></label>
 &nbsp; <span>{low}</span> <span class="bar"></span> <span>{high}</span></p>
<p id="tracks"></p>
<div id="text">{text}</div>
<div id="tip"></div>
<script type="application/json" id="data">{data}</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const spans = document.querySelectorAll("#text span[data-i]");
const tip = document.getElementById("tip"), menu = document.getElementById("unit");
let unit = 0, pinned = null;
function line(text, cls) {{
  const row = document.createElement("div");
  row.textContent = text;
  if (cls) row.className = cls;
  return row;
}}
function paint() {{
  const u = data.units[unit];
  spans.forEach((s, i) => {{
    s.style.background = u.bg[i];
    s.style.color = u.dark[i] === "1" ? "#fff" : "";
  }});
  const tracks = Object.entries(u.r).map(([k, r]) => k + " " + (r === null ? "-" : r));
  document.getElementById("tracks").textContent = "r: " + tracks.join(", ");
}}
function show(span) {{
  const i = +span.dataset.i, u = data.units[unit], v = u.values[i];
  const next = i + 1 < data.tokens.length ? data.tokens[i + 1] : null;
  tip.replaceChildren(line("token " + i + "  " + JSON.stringify(data.tokens[i])),
    line("unit " + u.unit + " = " + (v >= 0 ? "+" : "") + v.toFixed(3)),
    line(next === null ? "next: (end of the text)" :
      "next: " + JSON.stringify(next) + "  p = " + data.next[i].toFixed(3)),
    line("the model's guesses:"));
  for (const [token, p, came] of data.top[i]) {{
    const row = line(token.padEnd(8) + p.toFixed(3), came ? "came" : "");
    const bar = document.createElement("span");
    bar.className = "p";
    bar.style.width = (p * 8).toFixed(2) + "em";
    row.appendChild(bar);
    tip.appendChild(row);
  }}
  const box = span.getBoundingClientRect();
  tip.style.left = (window.scrollX + box.left) + "px";
  tip.style.top = (window.scrollY + box.bottom + 4) + "px";
  tip.style.display = "block";
}}
document.getElementById("text").addEventListener("mouseover", e => {{
  const s = e.target.closest("span[data-i]");
  if (s && pinned === null) show(s);
}});
document.getElementById("text").addEventListener("mouseleave", () => {{
  if (pinned === null) tip.style.display = "none";
}});
document.getElementById("text").addEventListener("click", e => {{
  const s = e.target.closest("span[data-i]");
  if (pinned) pinned.classList.remove("pinned");
  pinned = s && s !== pinned ? s : null;
  if (pinned) {{ pinned.classList.add("pinned"); show(pinned); }} else tip.style.display = "none";
}});
menu.addEventListener("change", () => {{
  unit = +menu.value;
  paint();
  if (pinned) show(pinned);
}});
paint();
</script>
</body></html>
"""


# -- a terminal --------------------------------------------------------------------------------


def _expand(text: str, column: int) -> tuple[list[str], int]:
    """`visible(text)` with tabs as spaces from `column`, cut after each line break: its
    lines, and the column after it."""
    lines, out = [], []
    for raw in text:
        c = visible(raw)
        width = TAB - column % TAB if raw == "\t" else 1
        out.append(" " * width if raw == "\t" else c)
        column += width
        if raw == "\n":
            lines.append("".join(out))
            out, column = [], 0
    return [*lines, "".join(out)], column


def terminal(found: dict, index: int = 0) -> str:
    """The text shown, each token on a 24-bit background by unit `index`'s activation,
    under a line naming the unit; a line break shows as ↵, the colour reset before it."""
    unit = found["units"][index]
    rgb = colours(unit["values"], found["bound"])
    backs = (rgb * 255).round().astype(int).tolist()
    head = (
        f"unit {unit['unit']} ({found['state']}) of {found['name']}: blue negative, red "
        f"positive, from -{found['bound']:.3g} to +{found['bound']:.3g}"
    )
    parts, column = [head, "\n"], 0
    for piece, back, light in zip(found["shown"], backs, _dark(rgb), strict=True):
        lines, column = _expand(piece, column)
        ink = "255;255;255" if light else "17;17;17"
        paint = f"\x1b[48;2;{back[0]};{back[1]};{back[2]}m\x1b[38;2;{ink}m"
        parts.append(paint + f"{RESET}\n{paint}".join(lines))
    return "".join(parts) + RESET + "\n"


# -- a picture ---------------------------------------------------------------------------------


def _glyphs(family: str):
    """A test of whether the font `family` draws a character."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    charmap = FT2Font(font_manager.findfont(family)).get_charmap()
    return lambda c: ord(c) in charmap


def grid(pieces: list[str], chars: int, columns: int = COLUMNS) -> list[tuple[int, int, str, int]]:
    """The first `chars` characters of the tokens `pieces` laid out in rows of `columns`:
    (row, column, character, token) each; a line break is ↵ and ends its row, a tab is
    spaces to the next stop, a long line wraps."""
    cells, row, column = [], 0, 0
    for token, piece in enumerate(pieces):
        for raw in piece:
            if len(cells) >= chars:
                return cells
            if column >= columns:
                row, column = row + 1, 0
            width = TAB - column % TAB if raw == "\t" else 1
            for _ in range(width):
                cells.append((row, column, " " if raw == "\t" else visible(raw), token))
                column += 1
            if raw == "\n":
                row, column = row + 1, 0
    return cells


def _panel(ax, cells: list, found: dict, unit: dict, drawn) -> None:
    """One unit's colouring of the characters `cells` (see `grid`) on `ax`."""
    rows, width = cells[-1][0] + 1, max(40, max(cell[1] for cell in cells) + 1)
    image = np.ones((rows, width, 3))  # white where there is no character
    rgb = colours(unit["values"], found["bound"])
    dark = _dark(rgb)
    for row, column, c, token in cells:
        image[row, column] = rgb[token]
        if c != " ":
            ink = "white" if dark[token] else "#111111"
            ax.text(column, row, c if drawn(c) else "?", ha="center", va="center", color=ink,
                    fontsize=11.5, family="DejaVu Sans Mono")  # fmt: skip
    extent = (-0.5, width - 0.5, rows - 0.5, -0.5)
    ax.imshow(image, aspect="auto", interpolation="nearest", extent=extent)
    ax.set_axis_off()
    tracked = [(abs(r), r, name) for name, r in unit["r"].items() if r is not None]
    best = f"; r = {max(tracked)[1]:+.2f} with {max(tracked)[2]}" if tracked else ""
    ax.set_title(f"unit {unit['unit']}, {found['state']}{best}", fontsize="medium", loc="left")


def figure(found: dict):
    """The start of the text (PICTURE_CHARS characters in all, in rows of at most COLUMNS),
    once per unit, coloured by its activation, with a colour bar."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LinearSegmentedColormap, Normalize
    from matplotlib.figure import Figure

    from charrnn.inspect.pictures import DPI

    units = found["units"]
    cells = grid(found["shown"], max(200, PICTURE_CHARS // len(units))) or [(0, 0, " ", 0)]
    rows, width = cells[-1][0] + 1, max(40, max(cell[1] for cell in cells) + 1)
    size = (width * 0.1 + 1.6, len(units) * (0.2 * rows + 0.45) + 0.6)
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    axes = fig.subplots(len(units), 1, squeeze=False)[:, 0]
    drawn = _glyphs("DejaVu Sans Mono")
    for ax, unit in zip(axes, units, strict=True):
        _panel(ax, cells, found, unit, drawn)
    scale = LinearSegmentedColormap.from_list("neurons", SCALE)
    bar = ScalarMappable(Normalize(-found["bound"], found["bound"]), scale)
    fig.colorbar(bar, ax=list(axes), shrink=min(1.0, 4 / size[1]), label=found["state"])
    fig.suptitle(  # wrapped: the picture is as wide as its text, which may be narrow
        f"Neuron activations: {found['name']} ({found['model']}, {found['num_layers']} x "
        f"{found['hidden_size']})\non {os.path.basename(found['text'])}",
        fontsize="medium",
        wrap=True,
    )
    return fig
