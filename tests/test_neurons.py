"""`charrnn inspect neurons`: activations (charrnn.inspect.neurons) checked against torch.nn
modules and cells, correlations against numpy.corrcoef, the text's properties on hand-made
strings, and the page, picture and terminal views (charrnn.inspect.neuronpage)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from conftest import assert_error, ok, png_info
from torch import nn

from charrnn import models
from charrnn.config import ModelConfig, NeuronsConfig
from charrnn.errors import UsageError
from charrnn.inspect import neuronpage, neurons
from charrnn.tokenizer import BPETokenizer, CharTokenizer

CELLS = {"rnn": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FAST = ["--threads", "1", "--find-length", "2000"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(cell: str, vocab_size: int = 11, **options) -> nn.Module:
    config = ModelConfig(cell=cell, embed_size=5, hidden_size=7, dropout=0.0, **options)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        return models.build(cell, config, vocab_size=vocab_size).double().eval()


def _naive_states(model: nn.Module, ids: torch.Tensor) -> tuple[list, list]:
    """torch.nn cells holding the model's weights in a plain loop: per layer, h and c
    (B, T, H) after every step."""
    stack = model.rnn
    cells = []
    for w_ih, w_hh, b_ih, b_hh in stack.layer_weights():
        options = {"nonlinearity": stack.rnn_kind} if stack.cell == "rnn" else {}
        cell = CELLS[stack.cell](w_ih.shape[1], stack.hidden_size, **options).double()
        cell.load_state_dict(
            {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}
        )
        cells.append(cell)
    zero = torch.zeros(ids.shape[0], stack.hidden_size, dtype=torch.float64)
    h, c = [zero] * len(cells), [zero] * len(cells)
    hs, cs = [[] for _ in cells], [[] for _ in cells]
    with torch.no_grad():
        for t in range(ids.shape[1]):
            x = model.embed(ids[:, t])
            for i, cell in enumerate(cells):
                if stack.cell == "lstm":
                    h[i], c[i] = cell(x, (h[i], c[i]))
                else:
                    h[i] = cell(x, h[i])
                hs[i].append(h[i])
                cs[i].append(c[i])
                x = h[i] + x if stack.residual and i > 0 else h[i]
    return [torch.stack(s, 1) for s in hs], [torch.stack(s, 1) for s in cs]


@pytest.mark.parametrize(
    "cell,options",
    [
        ("rnn", {"nonlinearity": "relu"}),
        ("gru", {"num_layers": 2}),
        ("lstm", {"num_layers": 2}),
        ("lstm", {"num_layers": 3, "residual": True}),
    ],
)
def test_activations_match_torch_modules_and_cells(cell, options):
    model = _model(cell, **options)
    ids = torch.from_numpy(np.random.default_rng(1).integers(4, 11, (3, 40)))
    traced = neurons.trace(model, ids)
    # the model's own forward (torch's fused nn.LSTM/GRU/RNN): the top layer's h, the last state
    logits, state = model(ids)
    torch.testing.assert_close(model.head(traced.outputs), logits.detach(), rtol=1e-9, atol=1e-9)
    for mine, theirs in zip(traced.state, state, strict=True):
        torch.testing.assert_close(mine, theirs.detach(), rtol=1e-9, atol=1e-9)
    # every layer's h (and c) at every step, against torch.nn cells
    hidden, cells = _naive_states(model, ids)
    for i in range(model.rnn.num_layers):
        torch.testing.assert_close(traced.hidden[i], hidden[i], rtol=1e-10, atol=1e-12)
        if cell == "lstm":
            torch.testing.assert_close(traced.cell[i], cells[i], rtol=1e-10, atol=1e-12)
    kind = neurons.state_kind(model, "auto")
    expected = torch.stack([c.tanh() for c in cells] if cell == "lstm" else hidden)
    assert kind == ("cell" if cell == "lstm" else "hidden")
    torch.testing.assert_close(neurons.activations(traced, kind), expected, rtol=1e-10, atol=1e-12)
    # read in two pieces, the state carried: the same
    first = neurons.trace(model, ids[:, :15])
    second = neurons.trace(model, ids[:, 15:], first.state)
    torch.testing.assert_close(second.hidden[-1], traced.hidden[-1][:, 15:], rtol=1e-10, atol=0)


def test_state_kinds():
    assert neurons.state_kind(_model("lstm"), "hidden") == "hidden"
    assert neurons.state_kind(_model("lstm"), "cell") == "cell"
    assert neurons.state_kind(_model("gru"), "auto") == "hidden"
    with pytest.raises(UsageError, match="a gru model has no cell state"):
        neurons.state_kind(_model("gru"), "cell")


def test_correlations_match_numpy_corrcoef():
    """3 rows of 300 steps: more than one CHUNK, so the state carried between chunks and the
    sums across them are checked too."""
    assert neurons.CHUNK < 300
    model = _model("lstm", num_layers=2)
    size = model.rnn.hidden_size
    w_ih, w_hh, b_ih, b_hh = model.rnn.layer_weights()[1]
    with torch.no_grad():  # layer 2, unit 3: its g is tanh(0), so c stays 0
        for w in (w_ih, w_hh, b_ih, b_hh):
            w[2 * size + 3] = 0.0
    rng = np.random.default_rng(4)
    ids = torch.from_numpy(rng.integers(4, 11, (3, 300)))
    signal = np.stack(
        [
            (ids.numpy() == 5).astype(float),  # tracks a token: some unit follows it
            rng.normal(size=(3, 300)),
            np.cumsum(rng.normal(size=(3, 300)), 1) * 1e3 + 1e6,  # large and far from 0
            np.full((3, 300), 2.0),  # constant: not present
            np.tile(np.arange(300.0) % 17, (3, 1)),
        ]
    )
    r = neurons.correlations(model, ids, signal, "cell")  # (P, L, H)
    assert r.shape == (5, 2, size)
    values = neurons.activations(neurons.trace(model, ids), "cell").numpy()  # (L, B, T, H)
    for p in (0, 1, 2, 4):
        for layer in range(2):
            for unit in range(size):
                if (layer, unit) == (1, 3):
                    continue
                a = values[layer, :, :, unit].ravel()
                expected = np.corrcoef(a, signal[p].ravel())[0, 1]
                assert float(r[p, layer, unit]) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert np.ptp(values[1, :, :, 3]) == 0 and r[[0, 1, 2, 4], 1, 3].tolist() == [0] * 4
    assert bool(r[3].isnan().all())  # constant property
    assert float(r[0].abs().max()) > 0.2  # some unit follows the token a little


def test_correlations_stay_exact_far_from_zero():
    """A relu RNN whose units sit near 1e4 and move by about 0.1: sums of squares taken
    around 0 would lose 8 of float64's 16 digits."""
    model = _model("rnn", nonlinearity="relu")
    w_ih, w_hh, b_ih, _ = model.rnn.layer_weights()[0]
    with torch.no_grad():
        w_hh.zero_()
        b_ih.fill_(1e4)
    ids = torch.from_numpy(np.random.default_rng(5).integers(4, 11, (2, 300)))
    signal = (ids.numpy() % 3 == 0).astype(float)[None]  # (1, B, T)
    r = neurons.correlations(model, ids, signal, "hidden")[0, 0]  # (H,)
    values = neurons.activations(neurons.trace(model, ids), "hidden")[0].numpy()  # (B, T, H)
    assert values.min() > 9e3 and values.std(axis=(0, 1)).max() < 1
    expected = [np.corrcoef(values[..., u].ravel(), signal.ravel())[0, 1] for u in range(7)]
    np.testing.assert_allclose(r.numpy(), expected, rtol=1e-9)


def _signals(text: str) -> dict[str, list[float]]:
    return {name: values.tolist() for name, values in neurons.signals(text).items()}


def test_brackets_nested_unmatched_and_inside_quotes():
    found = _signals('a(b[c]{d(e)})f)"(")')
    assert found["brackets"] == [0, 1, 1, 2, 2, 1, 2, 2, 3, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0]
    assert found["double_quotes"] == [0] * 15 + [1, 1, 0, 0]


def _ones(values) -> set[int]:
    return {i for i, v in enumerate(values) if v}


def test_quotes():
    text = 'say "hi" it\'s \'x\' "a\\"b" don\'t'  # say "hi" it's 'x' "a\"b" don't
    found = _signals(text)
    assert _ones(found["double_quotes"]) == {4, 5, 6, 18, 19, 20, 21, 22}  # \" escapes
    assert _ones(found["single_quotes"]) == {14, 15}  # it's, don't: apostrophes
    # Python: string prefixes, triple quotes holding a blank line and an apostrophe
    code = 'x = f\'{a}\' + rb\'z\'\n"""doc\n\nit\'s\n"""\ny'
    found = _signals(code)
    assert _ones(found["single_quotes"]) == {5, 6, 7, 8, 15, 16}
    assert _ones(found["double_quotes"]) == set(range(19, 32))
    assert _ones(found["brackets"]) == set()  # {a} is inside quotes


def test_an_unclosed_quote_ends_at_a_blank_line():
    text = 'x "ab\ncd\n\nef "g'
    inside = [int(v) for v in neurons.signals(text)["double_quotes"]]
    assert inside == [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1]
    text = "a (b\r\n\r\nc) d"  # brackets do not end at blank lines
    assert neurons.signals(text)["brackets"].tolist() == [0, 0, 1] + [1] * 6 + [0, 0, 0]


def test_line_positions_with_crlf():
    found = _signals("ab\r\ncd\nefg")
    assert found["line_position"] == [1, 2, 0, 0, 1, 2, 0, 1, 2, 3]
    assert found["to_newline"] == [2, 1, 1, 3, 2, 1, 4, 3, 2, 1]  # the end counts as a break
    assert _signals("") == {name: [] for name in neurons.PROPERTIES}


def test_token_signals_take_each_tokens_last_character():
    parts = ["", "ab", "", "c\n", "d"]  # BPE: tokens ending inside a character have no text
    found = neurons.token_signals(parts)  # (P, N)
    line = list(neurons.PROPERTIES).index("line_position")
    assert found[line].tolist() == [0, 2, 2, 0, 1]


def test_rank_and_the_units_chosen():
    r = torch.zeros(5, 2, 4, dtype=torch.float64)
    r[0, 1, 2], r[0, 0, 1] = -0.9, 0.5  # double quotes: 2:2 best, then 1:1
    r[2, 0, 3] = 0.95  # brackets: 1:3
    r[3, 1, 2] = 0.2  # line position: 2:2 again
    r[4, 0, 0] = -0.1
    signal = np.ones((5, 10))
    signal[[0, 2, 3, 4], 0] = 0.0  # single quotes (1) stays constant: not present
    found = neurons.rank(r, signal, top=2)
    assert [f.present for f in found] == [True, False, True, True, True]
    assert found[0].top == [{"unit": "2:2", "r": -0.9}, {"unit": "1:1", "r": 0.5}]
    assert found[1].top == [] and found[0].mean == pytest.approx(0.9)
    assert neurons.chosen_units(found, find=False) == ["1:3"]
    assert neurons.chosen_units(found, find=True) == ["1:3", "2:2", "1:0"]
    absent = neurons.rank(r, np.ones((5, 10)), top=2)
    assert neurons.chosen_units(absent, find=True) == ["1:0"]


def test_unit_names():
    assert neurons.parse_unit("2:17") == (1, 17)
    assert neurons.check_unit(" 1:6 ", 1, 7) == (0, 6)
    for bad in ("0:1", "1", "a:b", "1:-2", "1:2:3", "", "1:\u00b2"):
        with pytest.raises(UsageError, match="is not LAYER:UNIT"):
            neurons.parse_unit(bad)
    with pytest.raises(UsageError, match="1:7 is not in a model of 1 layer"):
        neurons.check_unit("1:7", 1, 7)


def _subject(text: str, tokenizer, cell: str = "lstm") -> neurons.TextSubject:
    model = _model(cell, vocab_size=tokenizer.vocab_size)
    ids = tokenizer.encode(text)
    return neurons.TextSubject("m", cell, model, ids, "text", tokenizer)


def test_predictions_are_the_models_softmax():
    text = "<b>tom & 'jerry'</b>\n" * 8
    subject = _subject(text, CharTokenizer.build(text))
    found = neurons.neurons(subject, NeuronsConfig(length=50, predictions=3), units=["1:2"])
    ids = torch.from_numpy(subject.ids[:50].astype(np.int64))[None]
    probs = torch.softmax(subject.model(ids)[0][0].detach(), -1)  # the fused forward's
    assert len(found.predictions) == len(found.shown) == len(found.next_p) == 50
    for t in (0, 17, 49):
        best = probs[t].topk(3)
        tokens = [subject.tokenizer.token_text(i) for i in best.indices.tolist()]
        assert [row[0] for row in found.predictions[t]] == tokens
        np.testing.assert_allclose([row[1] for row in found.predictions[t]], best.values, 1e-9)
    assert found.next_p[17] == pytest.approx(float(probs[17, ids[0, 18]]), rel=1e-9)
    assert found.next_p[-1] is None
    assert "".join(found.shown) == text[:50]
    assert [u.unit for u in found.units] == ["1:2"] and len(found.units[0].values) == 50
    assert found.state == "tanh(c)" and found.bound == 1.0 and found.read == len(subject.ids)


def test_bpe_tokens_are_coloured_by_their_text():
    text = "def f(x):\n    return 'caf\u00e9' + \"\u65e5\u672c\"\n" * 20
    tokenizer = BPETokenizer.train([text], vocab_size=300)
    subject = _subject(text, tokenizer, cell="gru")
    found = neurons.neurons(subject, NeuronsConfig(length=40), find=True)
    assert len(found.shown) == 40 < len("".join(found.shown))
    assert "".join(found.shown) == tokenizer.decode(subject.ids[:40])
    assert found.vocab == "bpe" and found.state == "h" and len(found.units) >= 2
    assert all(len(u.values) == 40 for u in found.units)
    by_name = {ranking.property: ranking for ranking in found.properties}
    assert by_name["brackets"].present and by_name["double_quotes"].present
    page = neuronpage.page(found.as_dict())
    assert len(_Spans.read(page).texts) == 40


class _Spans(HTMLParser):
    """The text of every token span of a page, and every link or source it names."""

    def __init__(self) -> None:
        super().__init__()
        self.texts, self.links, self._inside = [], [], False

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        self.links += [v for k, v in names.items() if k in ("src", "href")]
        self._inside = tag == "span" and "data-i" in names
        if self._inside:
            self.texts.append("")

    def handle_endtag(self, tag):
        self._inside = False

    def handle_data(self, data):
        if self._inside:
            self.texts[-1] += data

    @classmethod
    def read(cls, page: str) -> _Spans:
        parser = cls()
        parser.feed(page)
        return parser


def test_the_page_is_escaped_and_self_contained():
    """BPE tokens, so that markup spans several characters of one token."""
    text = "<script>alert('x')</script> &lt; \"q\"\n\tnext\x1b[31m line</b>\n" * 10
    tokenizer = BPETokenizer.train([text], vocab_size=300)
    subject = _subject(text, tokenizer)
    found = neurons.neurons(subject, NeuronsConfig(length=len(text)), units=["1:1", "1:4"])
    assert max(len(piece) for piece in found.shown) >= 5
    page = neuronpage.page(found.as_dict())
    spans = _Spans.read(page)
    assert spans.texts == [neuronpage.visible(p) for p in found.shown]  # every token, escaped
    assert "".join(spans.texts) == neuronpage.visible(text)
    assert spans.links == [] and "://" not in page  # nothing fetched
    assert "<script>alert" not in page and page.count("</script>") == 2
    assert "&amp;" in page and "\x1b" not in page and page.count("↵</span>\n") == 20
    data = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    loaded = json.loads(data.group(1))
    assert [u["unit"] for u in loaded["units"]] == ["1:1", "1:4"]
    assert loaded["units"][1]["values"][5] == pytest.approx(found.units[1].values[5], abs=1e-4)
    assert page.count('<option value="') == 2


def test_visible_and_the_terminal_view():
    assert neuronpage.visible("a\tb\r\n\x1b[0m\u202e\u2028\x7f") == "a\tb␍↵␛[0m\ufffd␤␡"
    text = "ab\tc\nd\x1b\n"
    found = {
        "name": "m",
        "state": "h",
        "bound": 1.0,
        "shown": ["ab", "\tc\n", "d\x1b", "\n"],
        "units": [{"unit": "1:0", "values": [-1.0, 0.0, 0.5, 1.0], "r": {}}],
    }
    shown = neuronpage.terminal(found)
    head, body = shown.split("\n", 1)
    assert head.startswith("unit 1:0 (h) of m: blue negative") and "\x1b[48;2;33;102;172m" in body
    assert "\x1b[48;2;178;24;43m" in body  # +1: the reddest
    assert ANSI.sub("", body) == "ab  c↵\nd␛↵\n\n"  # a tab to the next stop, escapes drawn
    assert ANSI.sub("", shown).count("\n") == text.count("\n") + 2
    assert neuronpage.colours([-5, 0, 0.25], 1.0).round(3).tolist() == [
        [0.129, 0.4, 0.675],
        [0.969, 0.969, 0.969],
        [0.992, 0.859, 0.78],
    ]


# -- the command -------------------------------------------------------------------------------


def _strict(stdout: str):
    def refuse(name):
        raise AssertionError(f"{name} in the JSON")

    return json.loads(stdout, parse_constant=refuse)


def test_a_run_as_json_and_as_tables(run, tiny_runs):
    data = _strict(ok(run("inspect", "neurons", tiny_runs["lm"], *FAST, "--json")).stdout)
    assert (data["name"], data["model"], data["state"], data["vocab"]) == (
        "lm", "lstm", "tanh(c)", "char"
    )  # fmt: skip
    assert data["text"].endswith("(val)") and 1000 < data["read"] <= min(data["tokens"], 2000)
    by_name = {p["property"]: p for p in data["properties"]}
    assert list(by_name) == list(neurons.PROPERTIES)
    assert not by_name["double_quotes"]["present"] and by_name["double_quotes"]["top"] == []
    assert by_name["line_position"]["present"] and len(by_name["line_position"]["top"]) == 5
    best = max((p["top"][0] for p in data["properties"] if p["present"]), key=lambda e: abs(e["r"]))
    (unit,) = data["units"]
    assert unit["unit"] == best["unit"] and unit["r"]["double_quotes"] is None
    assert all(-1 <= v <= 1 for v in unit["values"]) and len(unit["values"]) == len(data["shown"])
    find = ok(run("inspect", "neurons", tiny_runs["lm"], *FAST, "--find", "--top", "2"))
    lines = find.stdout.splitlines()
    assert lines[1].split() == ["property", "rank", "unit", "r"]
    assert lines[2].split()[:3] == [
        "line_position",
        "1",
        by_name["line_position"]["top"][0]["unit"],
    ]
    assert "not in the text: double_quotes, single_quotes, brackets" in find.stdout
    table = ok(run("inspect", "neurons", tiny_runs["lm"], *FAST, "--unit", "1:3", "--unit", "1:0"))
    rows = [line.split() for line in table.stdout.splitlines()[1:4]]
    assert rows[0][:4] == ["unit", "min", "mean", "max"] and [r[0] for r in rows[1:]] == [
        "1:3", "1:0"
    ]  # fmt: skip
    assert rows[1][4:7] == ["-", "-", "-"]  # no quotes, no brackets


def test_pages_pictures_and_colour(run, tiny_runs, tmp_path, monkeypatch):
    page, picture = tmp_path / "n.html", tmp_path / "n.png"
    args = ["inspect", "neurons", tiny_runs["lm"], *FAST, "--length", "300"]
    found = ok(run(*args, "--find", "-o", page, "--json"))
    data = _strict(found.stdout)
    best = {p["top"][0]["unit"] for p in data["properties"] if p["present"]}
    assert {u["unit"] for u in data["units"]} == best  # the best of each property
    assert f"wrote {page}" in found.stderr
    assert _Spans.read(page.read_text(encoding="utf-8")).texts == [
        neuronpage.visible(p) for p in data["shown"]
    ]
    ok(run(*args, "-o", picture, "-q"))
    info = png_info(picture)
    assert info["text"]["Title"] == "Neuron activations" and info["width"] > 500
    ok(run(*args, "-o", tmp_path / "n.svg", "--unit", "1:1", "--unit", "1:2", "-q"))
    assert (tmp_path / "n.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    coloured = ok(run(*args, "--color", "always", "--unit", "1:5")).stdout
    assert coloured.startswith("unit 1:5 (tanh(c)) of lm") and "\x1b[48;2;" in coloured
    assert (
        ANSI.sub("", coloured).split("\n", 1)[1]
        == neuronpage.visible("".join(data["shown"])).replace("↵", "↵\n") + "\n"
    )
    assert "\x1b" not in ok(run(*args, "--color", "never")).stdout
    from charrnn.cli import cmd_neurons

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cmd_neurons._coloured("auto", None) and not cmd_neurons._coloured("auto", page)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not cmd_neurons._coloured("auto", None) and cmd_neurons._coloured("always", None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.html", "n.png", "n.svg"]


def test_text_from_stdin_and_the_hidden_state(run, tiny_runs):
    text = 'the king (and the queen)\nthe "night" of the day\n' * 10
    args = ["inspect", "neurons", tiny_runs["lm"], *FAST, "--text", "-", "--json"]
    data = _strict(ok(run(*args, "--state", "hidden", "--unit", "1:4", stdin=text)).stdout)
    assert data["text"] == "<stdin>" and data["tokens"] == len(text) and data["state"] == "h"
    assert "".join(data["shown"]).replace("\ufffd", "?") == text.replace("(", "?").replace(
        ")", "?"
    ).replace('"', "?")  # characters outside the vocabulary are <unk>
    cell = _strict(ok(run(*args, "--unit", "1:4", stdin=text)).stdout)
    assert cell["state"] == "tanh(c)" and cell["units"][0]["values"] != data["units"][0]["values"]


def test_errors(run, tiny_runs, tmp_path):
    neurons_ = ["inspect", "neurons"]
    lm = tiny_runs["lm"]
    assert_error(run(*neurons_, tiny_runs["seq2seq"], *FAST), 1, "supports only language models")
    assert_error(run(*neurons_, lm, *FAST, "--unit", "2:0"), 2, "2:0 is not in a model of 1")
    assert_error(run(*neurons_, lm, *FAST, "--unit", "1:16"), 2, "--unit: 1:16 is not in")
    assert_error(run(*neurons_, lm, *FAST, "--unit", "x"), 2, "--unit: 'x' is not LAYER:UNIT")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert_error(run(*neurons_, lm, *FAST, "--text", empty), 1, "is empty")
    assert_error(run(*neurons_, lm, *FAST, "-o", tmp_path / "n.gif"), 2, ".html, .png or .svg")
    assert_error(run(*neurons_, lm, *FAST, "-o", tmp_path / "no" / "n.html"), 1, "folder")
    assert_error(run(*neurons_, lm, *FAST, "--state", "cell2"), 2, "--state: unknown state")
    assert_error(run(*neurons_, lm, *FAST, "--color", "red"), 2, "--color: unknown choice")
    assert_error(run(*neurons_, lm, *FAST, "--length", "0"), 2, "--length")
    assert_error(run(*neurons_, tmp_path / "nowhere"), 1, "nowhere")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]


def test_help_imports_neither_torch_nor_matplotlib():
    probe = (
        "import sys; from charrnn.cli import main\n"
        "try:\n    main(['inspect', 'neurons', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported for --help'\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported for --help'\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--find" in done.stdout
