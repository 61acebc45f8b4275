"""Corpus inputs: files, directories, `.gz` files, stdin and built-in corpora, read as text.

Every input is resolved to a list of `Source` files first (stdin is spooled to a file so that
it can be read more than once), then streamed in chunks of bounded size: memory never grows
with the size of the corpus.
"""

from __future__ import annotations

import codecs
import fnmatch
import gzip
import hashlib
import os
import shutil
import stat
import sys
import sysconfig
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from charrnn.errors import CharrnnError, UsageError
from charrnn.files import io_error

CHUNK_BYTES = 1 << 19  # 512 KiB of raw bytes per read: buffers stay in cache
SNIFF_BYTES = 8192  # a file whose first 8 KiB hold a NUL byte is binary
BUILTIN_PREFIX = "builtin:"
_SAVE_IT = "save it to a file first (e.g. zcat big.gz > big.txt)"
ERROR_MODES = ("strict", "replace", "ignore")

# Progress callback: (bytes done so far in this pass, total bytes or None).
ProgressFn = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Source:
    """One input file, as named in messages (`name`) and as read (`path`)."""

    name: str
    path: Path
    size: int
    gz: bool = False


def _python_stdlib_files() -> list[Path]:
    """The running interpreter's standard library sources, without tests and data tables."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip_dirs = {"site-packages", "dist-packages", "test", "tests", "idle_test", "encodings"}
    skip_dirs |= {"pydoc_data", "__pycache__"}
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs and not d.startswith("."))
        files += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]
    return files


def _packaged(name: str) -> Callable[[], list[Path]]:
    """A corpus shipped inside the package (charrnn/corpora/NAME, gzip-compressed)."""
    return lambda: [Path(__file__).parent / "corpora" / name]


# Built-in corpora: text every install has, so that the README's examples need no download.
BUILTINS: dict[str, tuple[str, Callable[[], list[Path]]]] = {
    "shakespeare": (
        "tinyshakespeare: 1.1 MB of Shakespeare's plays, speaker names and verse (public "
        "domain; karpathy/char-rnn's data/tinyshakespeare)",
        _packaged("shakespeare.txt.gz"),
    ),
    "names": (
        "32,033 US baby names of 2018, one per line (public domain, from ssa.gov via "
        "karpathy/makemore)",
        _packaged("names.txt.gz"),
    ),
    "python": (
        "the Python standard library source of the running interpreter (*.py, about 10 MB, "
        "without tests, site-packages and codec tables)",
        _python_stdlib_files,
    ),
}


# Built-in tasks that are not plain text, written by their kind's module (charrnn.pairs,
# charrnn.labels): name -> (what they are, the flag that reads them).
TASK_BUILTINS = {"dates": ("parallel text", "--pairs"), "plays": ("labelled text", "--labels")}


def builtin_names() -> list[str]:
    """Names accepted as `builtin:NAME` wherever a corpus path is accepted."""
    return [BUILTIN_PREFIX + name for name in BUILTINS]


def is_builtin(name: str) -> bool:
    """True when `name` names a built-in corpus (`builtin:python`)."""
    return name.startswith(BUILTIN_PREFIX)


def _is_binary(path: Path, gz: bool, encoding: str = "utf-8") -> bool:
    """Whether a file holds a NUL character: in its bytes for encodings that keep ASCII as
    bytes, in its decoded text for UTF-16 and UTF-32 (whose ASCII holds NUL bytes)."""
    try:
        with _open(path, gz) as f:
            head = f.read(SNIFF_BYTES)
    except (OSError, EOFError, zlib.error):
        return True
    if "\0".encode(encoding, errors="replace") == b"\0":
        return b"\0" in head
    return "\0" in head.decode(encoding, errors="replace")


def _open(path: Path, gz: bool):
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _file_source(path: Path, name: str) -> Source:
    return Source(name=name, path=path, size=path.stat().st_size, gz=path.suffix == ".gz")


def _walk(root: Path, glob: str, encoding: str = "utf-8") -> tuple[list[Source], int, int]:
    """Text files below `root` matching `glob`, sorted; also how many binary files were
    skipped, and how many of charrnn's own folders. Hidden folders and charrnn's (data and
    run directories, whose meta.json and tokenizer.json are not corpus text) are left out."""
    sources, skipped, ours = [], 0, 0
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) != root and _charrnn_dir(filenames):
            dirnames[:] = []
            ours += 1
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            if fname.startswith(".") or not fnmatch.fnmatch(fname, glob):
                continue
            path = Path(dirpath) / fname
            if not path.is_file():
                continue
            if _is_binary(path, path.suffix == ".gz", encoding):
                skipped += 1
                continue
            sources.append(_file_source(path, str(path)))
    return sources, skipped, ours


def _charrnn_dir(filenames: list[str]) -> bool:
    """Whether a folder's files make it a charrnn data directory or run directory."""
    names = set(filenames)
    tokenizers = {"tokenizer.json", "source.tokenizer.json"}
    return ("meta.json" in names and bool(tokenizers & names)) or bool(
        {"last.pt", "best.pt"} & names
    )


def make_dir(path: Path) -> None:
    """`mkdir -p path`, failing with one clear line (a file in the way, no permission)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CharrnnError(str(path), "is a file, not a folder", "choose another path") from None
    except OSError as e:
        raise CharrnnError(
            str(path),
            f"cannot create this folder ({io_error(path, e).what})",
            "choose another path (-o, or CHARRNN_CACHE_DIR for the cache)",
        ) from None


def spool_stdin(directory: Path, stream=None) -> Path:
    """Copy stdin to a file in `directory` so that it can be read several times."""
    if stream is None and sys.stdin is None:
        raise CharrnnError("-", "stdin is closed", "pipe the text in, or pass a file")
    stream = stream if stream is not None else sys.stdin.buffer
    if (directory / "stdin.txt").exists():
        raise UsageError("-", "stdin given twice", "pass - once")
    return _spool(stream, directory, "stdin.txt", "-")


def is_stream(item: str) -> bool:
    """Whether an input names a pipe or a device (a FIFO, `<(zcat big.gz)`): text that can be
    read once, as it comes, like stdin."""
    try:
        mode = os.stat(item).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _spool(stream, directory: Path, name: str, where: str) -> Path:
    """Copy a stream to `directory`/`name` (read once, kept to be read again)."""
    make_dir(directory)
    path = directory / name
    try:
        with open(path, "wb") as out:
            shutil.copyfileobj(stream, out, CHUNK_BYTES)
    except OSError as e:
        path.unlink(missing_ok=True)
        raise io_error(path if e.filename else where, e) from None
    return path


def resolve(
    inputs: Sequence[str],
    *,
    glob: str = "*",
    spool_dir: Path | None = None,
    encoding: str = "utf-8",
) -> list[Source]:
    """Turn command-line inputs (paths, directories, `-`, `builtin:NAME`) into source files
    (`encoding`: the text's, to tell text from binary files in directories)."""
    if not inputs:
        raise UsageError("INPUT", "no input given", "pass a file, a directory, - or builtin:python")
    sources: list[Source] = []
    for item in inputs:
        if item == "-":
            if spool_dir is None:
                raise UsageError("-", "stdin cannot be read here", "pass a file instead")
            path = spool_stdin(spool_dir)
            sources.append(Source(name="<stdin>", path=path, size=path.stat().st_size))
        elif is_builtin(item):
            key = item[len(BUILTIN_PREFIX) :]
            if key not in BUILTINS:
                if key in TASK_BUILTINS:
                    what, flag = TASK_BUILTINS[key]
                    raise UsageError(item, f"is {what}", f"add {flag}")
                known = ", ".join(builtin_names())
                tasks = ", ".join(
                    f"{BUILTIN_PREFIX}{name} ({what})" for name, (what, _) in TASK_BUILTINS.items()
                )
                raise UsageError(
                    item, "no such built-in corpus", f"use one of: {known} (text), {tasks}"
                )
            files = BUILTINS[key][1]()
            if not files:
                raise CharrnnError(
                    item, "the built-in corpus is empty on this install", "pass a text file instead"
                )
            sources += [_file_source(p, f"{item}/{p.name}") for p in files]
        elif is_stream(item):  # a FIFO or <(process substitution): read once, like stdin
            if spool_dir is None:
                raise CharrnnError(item, "is a pipe, which can be read only once", _SAVE_IT)
            with open(item, "rb") as stream:
                path = _spool(stream, spool_dir, f"stream-{len(sources)}.txt", item)
            sources.append(Source(name=item, path=path, size=path.stat().st_size))
        else:
            path = Path(item)
            try:
                path.stat()
            except OSError as e:
                raise io_error(item, e) from None
            if path.is_dir():
                found, skipped, ours = _walk(path, glob, encoding)
                if not found:
                    notes = [f"{skipped} binary files skipped"] if skipped else []
                    if ours:
                        notes.append(f"{ours} charrnn data or run directories skipped")
                    extra = f" ({'; '.join(notes)})" if notes else ""
                    raise CharrnnError(
                        item,
                        f"no text files matching '{glob}'{extra}",
                        "pass a directory that holds text files, or change --glob",
                    )
                sources += found
            elif not path.is_file():
                raise CharrnnError(item, "not a regular file", "pass a text file or a directory")
            else:
                sources.append(_file_source(path, item))
    return sources


def _ascii_compatible(encoding: str) -> bool:
    name = codecs.lookup(encoding).name
    return not name.startswith(("utf-16", "utf-32"))


def check_encoding(encoding: str, errors: str) -> None:
    """Validate `--encoding` and `--errors` up front."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UsageError(
            "--encoding",
            f"unknown encoding '{encoding}'",
            "use a Python codec name such as utf-8 or latin-1",
        ) from None
    if errors not in ERROR_MODES:
        raise UsageError(
            "--errors", f"unknown mode '{errors}'", f"use one of: {', '.join(ERROR_MODES)}"
        )


def read_text(
    sources: Sequence[Source],
    *,
    encoding: str = "utf-8",
    errors: str = "strict",
    hashes: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
    chunk_bytes: int | None = None,
) -> Iterator[str]:
    """Yield the decoded text of all sources, in order, in chunks of about `chunk_bytes`.

    Raises `CharrnnError` naming the file and byte offset for binary data (NUL bytes) and for
    bytes that are not valid in `encoding` (with `errors="strict"`). When `hashes` is given it
    receives the sha256 of each source's bytes.
    """
    check_encoding(encoding, errors)
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    nul_check_bytes = _ascii_compatible(encoding)
    total = sum(s.size for s in sources) if not any(s.gz for s in sources) else None
    done = 0
    # UTF-8 text may open with a byte order mark (Windows editors write one): not text
    utf8 = codecs.lookup(encoding).name == "utf-8"
    for src in sources:
        decoder = codecs.getincrementaldecoder(encoding)(errors)
        opening = utf8  # the source's first text is still to come
        digest = hashlib.sha256() if hashes is not None else None
        offset = 0
        try:
            with _open(src.path, src.gz) as f:
                while True:
                    raw = f.read(chunk_bytes)
                    final = not raw
                    if raw:
                        if digest is not None:
                            digest.update(raw)
                        if nul_check_bytes and b"\0" in raw:
                            raise _binary(src, offset + raw.index(b"\0"))
                    pending = len(decoder.getstate()[0])
                    try:
                        text = decoder.decode(raw, final=final)
                    except UnicodeDecodeError as e:
                        at = offset - pending + e.start
                        raise CharrnnError(
                            src.name,
                            f"not valid {encoding} at byte offset {at}",
                            "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8), or "
                            "tokenize it with charrnn tokenize --encoding latin-1 (or --errors "
                            "replace)",
                        ) from None
                    if not nul_check_bytes and "\0" in text:
                        raise _binary(src, offset)
                    offset += len(raw)
                    if text and opening:
                        opening = False
                        text = text.removeprefix("\ufeff")
                    if text:
                        yield text
                    if progress is not None and raw:
                        done += len(raw)
                        progress(done, total)
                    if final:
                        break
        except (OSError, EOFError, zlib.error) as e:
            what = f"cannot read ({getattr(e, 'strerror', None) or e})"
            raise CharrnnError(src.name, what, "check the file") from None
        if digest is not None:
            hashes[src.name] = digest.hexdigest()


def _binary(src: Source, at: int) -> CharrnnError:
    return CharrnnError(
        src.name,
        f"binary file (NUL byte at offset {at})",
        "pass text files only (charrnn tokenize narrows a directory with --glob)",
    )
