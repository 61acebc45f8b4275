"""Corpus inputs: resolution of files/directories/gz/stdin/built-ins and validated decoding."""

from __future__ import annotations

import gzip
import io

import pytest
from conftest import HOSTILE

from charrnn import corpus
from charrnn.errors import CharrnnError, UsageError


def _read(paths, **kw) -> str:
    return "".join(corpus.read_text(corpus.resolve([str(p) for p in paths]), **kw))


def test_files_dirs_and_gz_concatenate_in_order(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.txt").write_text("B")
    (tmp_path / "d" / "a.txt").write_text("A")
    (tmp_path / "d" / "sub" / "c.txt").write_text("C")
    (tmp_path / "d" / ".hidden.txt").write_text("H")
    (tmp_path / "d" / "skip.md").write_text("M")
    (tmp_path / "d" / "image.txt").write_bytes(b"\x89PNG\0\0")
    with gzip.open(tmp_path / "z.txt.gz", "wt") as f:
        f.write("Z")
    (tmp_path / "first.txt").write_text("1")
    sources = corpus.resolve(
        [str(tmp_path / "first.txt"), str(tmp_path / "d"), str(tmp_path / "z.txt.gz")], glob="*.txt"
    )
    assert [s.path.name for s in sources] == ["first.txt", "a.txt", "b.txt", "c.txt", "z.txt.gz"]
    assert "".join(corpus.read_text(sources)) == "1ABCZ"


def test_folders_skip_charrnn_directories_and_read_utf16(tmp_path):
    (tmp_path / "d" / "data").mkdir(parents=True)  # a data directory from charrnn tokenize
    (tmp_path / "d" / "data" / "meta.json").write_text("{}")
    (tmp_path / "d" / "data" / "tokenizer.json").write_text("{}")
    (tmp_path / "d" / "run").mkdir()  # a run directory
    (tmp_path / "d" / "run" / "notes.txt").write_text("R")
    (tmp_path / "d" / "run" / "last.pt").write_bytes(b"PK")
    (tmp_path / "d" / "a.txt").write_text("A")
    assert [s.path.name for s in corpus.resolve([str(tmp_path / "d")])] == ["a.txt"]
    (tmp_path / "d" / "a.txt").unlink()
    with pytest.raises(CharrnnError, match="2 charrnn data or run directories skipped"):
        corpus.resolve([str(tmp_path / "d")])
    # UTF-16 text is full of NUL bytes: it is not taken for binary when it is the encoding
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "a.txt").write_text("h\u00e9llo\n", encoding="utf-16")
    with pytest.raises(CharrnnError, match="1 binary files skipped"):
        corpus.resolve([str(tmp_path / "u")])
    sources = corpus.resolve([str(tmp_path / "u")], encoding="utf-16")
    assert "".join(corpus.read_text(sources, encoding="utf-16")) == "h\u00e9llo\n"


def test_builtin_python_corpus_exists():
    sources = corpus.resolve(["builtin:python"])
    assert len(sources) > 50
    assert all(s.path.suffix == ".py" for s in sources)
    with pytest.raises(UsageError, match="no such built-in"):
        corpus.resolve(["builtin:nope"])


def test_stdin_is_spooled(tmp_path):
    path = corpus.spool_stdin(tmp_path, io.BytesIO(HOSTILE.encode()))
    assert path.read_bytes() == HOSTILE.encode()


def test_crlf_and_unicode_survive_chunking(tmp_path, monkeypatch):
    path = tmp_path / "h.txt"
    path.write_bytes(HOSTILE.encode())
    # 3-byte chunks cut through multi-byte characters and CRLF pairs
    assert _read([path], chunk_bytes=3) == HOSTILE


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(CharrnnError, match="no such file"):
        corpus.resolve([str(tmp_path / "nope.txt")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CharrnnError, match="no text files"):
        corpus.resolve([str(tmp_path / "empty")])


def test_binary_file_named_with_offset(tmp_path):
    path = tmp_path / "bin.txt"
    path.write_bytes(b"hello\0world")
    with pytest.raises(CharrnnError, match=r"binary file \(NUL byte at offset 5\)"):
        _read([path])


def test_bad_utf8_names_file_and_offset(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("ok \u00e9 ".encode() + b"caf\xe9 au lait")
    with pytest.raises(CharrnnError, match=r"latin.txt: not valid utf-8 at byte offset 9"):
        _read([path])
    # offsets stay right when the bad byte is far into a later chunk
    with pytest.raises(CharrnnError, match="offset 9"):
        _read([path], chunk_bytes=4)
    assert _read([path], errors="replace").endswith("caf\ufffd au lait")
    assert _read([path], encoding="latin-1").endswith("caf\u00e9 au lait")


def test_a_utf8_byte_order_mark_is_not_text(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + HOSTILE.encode())
    for size in (2, 3, 5, 1 << 20):
        assert _read([path], chunk_bytes=size) == HOSTILE
    assert _read([path], encoding="latin-1").startswith("\u00ef\u00bb\u00bf")  # not UTF-8
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xef\xbb\xbfok caf\xe9")  # offsets count the mark's bytes
    for size in (4, 1 << 20):
        with pytest.raises(CharrnnError, match="offset 9"):
            _read([bad], chunk_bytes=size)


def test_truncated_utf8_at_end_of_file(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_bytes("abc\u65e5".encode()[:-1])
    with pytest.raises(CharrnnError, match="offset 3"):
        _read([path])


def test_bad_encoding_options():
    with pytest.raises(UsageError, match="--encoding"):
        corpus.check_encoding("klingon", "strict")
    with pytest.raises(UsageError, match="--errors"):
        corpus.check_encoding("utf-8", "surrogateescape")
