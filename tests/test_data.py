"""The tokenize pipeline: splits, memmaps, meta data, bounded chunking, data-dir validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import HOSTILE

from charrnn import corpus
from charrnn.config import TokenizeConfig
from charrnn.data import load_dataset, segments, tokenize_corpus
from charrnn.errors import CharrnnError
from charrnn.tokenizer import UNK_ID


def _write(tmp_path, text, name="c.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_tail_split_is_contiguous_and_exact(tmp_path):
    text = HOSTILE * 40
    src = _write(tmp_path, text)
    meta = tokenize_corpus([str(src)], tmp_path / "d", TokenizeConfig(val_frac=0.1, test_frac=0.05))
    ds = load_dataset(tmp_path / "d")
    n = len(text)
    n_val, n_test = round(n * 0.1), round(n * 0.05)
    parts = {s: ds.tokenizer.decode(ds.ids(s)) for s in ("train", "val", "test")}
    assert parts["train"] == text[: n - n_val - n_test]
    assert parts["val"] == text[n - n_val - n_test : n - n_test]
    assert parts["test"] == text[n - n_test :]
    assert meta["splits"]["val"]["chars"] == n_val
    assert meta["splits"]["train"]["bytes"] == len(parts["train"].encode())


def test_split_and_ids_are_deterministic(tmp_path):
    src = _write(tmp_path, HOSTILE * 30)
    for name in ("a", "b"):
        tokenize_corpus([str(src)], tmp_path / name, TokenizeConfig(vocab="bpe", vocab_size=300))
    for f in ("train.bin", "val.bin", "tokenizer.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_memmap_reading_matches_encoding(tmp_path, shakespeare_like):
    tokenize_corpus([str(shakespeare_like)], tmp_path / "d")
    ds = load_dataset(tmp_path / "d")
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    train = np.memmap(tmp_path / "d" / "train.bin", dtype=meta["dtype"], mode="r")
    text = shakespeare_like.read_text()
    n_train = meta["splits"]["train"]["chars"]
    assert train.tolist() == ds.tokenizer.encode(text[:n_train]).tolist()
    assert meta["format"] == "charrnn-data" and meta["version"] == 1
    assert meta["sources"]["files"][0]["sha256"]


@pytest.mark.parametrize("vocab", ["char", "bpe"])
def test_small_chunks_give_identical_output(tmp_path, monkeypatch, vocab):
    text = (HOSTILE + "some words here and there " * 20 + "\n") * 30
    src = _write(tmp_path, text)
    config = TokenizeConfig(vocab=vocab, vocab_size=300 if vocab == "bpe" else None)
    tokenize_corpus([str(src)], tmp_path / "big", config)
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 37)
    tokenize_corpus([str(src)], tmp_path / "small", config)
    for f in ("train.bin", "val.bin", "tokenizer.json"):
        assert (tmp_path / "big" / f).read_bytes() == (tmp_path / "small" / f).read_bytes()


def test_segments_keep_text_and_end_at_safe_cuts():
    chunks = ["ab c", "d\n", "   ", "e f\n\ng", "h"]
    out = list(segments(chunks))
    assert "".join(out) == "".join(chunks)
    for piece in out[:-1]:
        assert not piece[-1].isspace()


def test_vocab_from_train_only_and_unknowns_counted(tmp_path):
    src = _write(tmp_path, "abc " * 100 + "xyz\u00e9")
    meta = tokenize_corpus([str(src)], tmp_path / "d", TokenizeConfig(val_frac=0.01))
    ds = load_dataset(tmp_path / "d")
    assert "x" not in ds.tokenizer.chars
    assert meta["splits"]["val"]["unknown"] == 4
    assert int(np.count_nonzero(ds.ids("val") == UNK_ID)) == 4
    assert dict(meta["unknown_chars"]) == {"x": 1, "y": 1, "z": 1, "\u00e9": 1}


def test_unknown_characters_are_counted_exactly(tmp_path):
    train = _write(tmp_path, "abc \n" * 200, "train.txt")
    val = _write(tmp_path, "ab x" * 3000 + "\u00e9" * 1500 + "\U0001f600" * 3, "val.txt")
    meta = tokenize_corpus(
        [str(train)], tmp_path / "d", TokenizeConfig(val_frac=0.0), val_inputs=[str(val)]
    )
    assert meta["splits"]["val"]["unknown"] == 4503
    assert meta["unknown_chars"] == [["x", 3000], ["\u00e9", 1500], ["\U0001f600", 3]]


def test_explicit_val_and_test_files(tmp_path):
    train = _write(tmp_path, "hello world\n" * 10, "train.txt")
    val = _write(tmp_path, "hello val\n", "val.txt")
    test = _write(tmp_path, "world test\n", "test.txt")
    meta = tokenize_corpus(
        [str(train)],
        tmp_path / "d",
        TokenizeConfig(val_frac=0.0),
        val_inputs=[str(val)],
        test_inputs=[str(test)],
    )
    assert meta["split_method"] == "files"
    assert meta["splits"]["train"]["chars"] == len("hello world\n" * 10)
    ds = load_dataset(tmp_path / "d")
    assert ds.tokenizer.decode(ds.ids("val")) == "hello l\n"  # 'v', 'a' never seen in train
    assert meta["splits"]["val"]["unknown"] == 2
    assert meta["splits"]["test"]["unknown"] == 3  # t, s, t


def test_uint32_when_vocabulary_exceeds_uint16(tmp_path):
    text = "".join(chr(c) for c in range(0x20000, 0x20000 + 65600))  # CJK Extension B
    src = _write(tmp_path, text)
    meta = tokenize_corpus([str(src)], tmp_path / "d", TokenizeConfig(val_frac=0.0))
    assert meta["dtype"] == "uint32"
    ds = load_dataset(tmp_path / "d")
    assert ds.tokenizer.decode(ds.ids("train")) == text


def test_lowercase_and_normalization_apply_to_all_splits(tmp_path):
    src = _write(tmp_path, "CAFE\u0301 Cafe\u0301 " * 20)
    tokenize_corpus([str(src)], tmp_path / "d", TokenizeConfig(lowercase=True, normalize="nfc"))
    ds = load_dataset(tmp_path / "d")
    assert ds.tokenizer.decode(ds.ids("train")).startswith("caf\u00e9 caf\u00e9 ")
    assert "\u0301" not in ds.tokenizer.chars


def test_failure_leaves_nothing_behind(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine text " * 1000 + b"\xff")
    with pytest.raises(CharrnnError):
        tokenize_corpus([str(bad)], tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]


def test_force_replaces_existing(tmp_path, shakespeare_like):
    out = tmp_path / "d"
    tokenize_corpus([str(shakespeare_like)], out)
    with pytest.raises(CharrnnError, match="already exists"):
        tokenize_corpus([str(shakespeare_like)], out)
    tokenize_corpus(
        [str(shakespeare_like)], out, TokenizeConfig(vocab="bpe", vocab_size=300), force=True
    )
    assert load_dataset(out).tokenizer.kind == "bpe"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "d"]


def test_load_dataset_rejects_broken_directories(tmp_path, shakespeare_like):
    with pytest.raises(CharrnnError, match="no such directory"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CharrnnError, match="no meta.json"):
        load_dataset(tmp_path / "empty")
    out = tmp_path / "d"
    tokenize_corpus([str(shakespeare_like)], out)
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(CharrnnError, match="newer charrnn"):
        load_dataset(out)
    (out / "meta.json").write_text(json.dumps(meta))
    data = (out / "train.bin").read_bytes()
    (out / "train.bin").write_bytes(data[:-2])
    with pytest.raises(CharrnnError, match="truncated"):
        load_dataset(out)
    (out / "meta.json").write_text("{garbage")
    with pytest.raises(CharrnnError, match="corrupt meta"):
        load_dataset(out)


def test_existing_vocabulary_is_reused(tmp_path, shakespeare_like):
    from charrnn.data import load_vocabulary

    tokenize_corpus(
        [str(shakespeare_like)], tmp_path / "a", TokenizeConfig(vocab="bpe", vocab_size=300)
    )
    other = _write(tmp_path, "the king and the fool\n" * 40, "other.txt")
    vocab = load_vocabulary(tmp_path / "a")
    meta = tokenize_corpus([str(other)], tmp_path / "b", vocabulary=vocab)
    assert meta["vocabulary_from"] == "given" and meta["vocab"]["kind"] == "bpe"
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (
        tmp_path / "b" / "tokenizer.json"
    ).read_text()
    ds = load_dataset(tmp_path / "b")
    assert (
        ds.ids("train").tolist()
        == vocab.encode(other.read_text()[: meta["splits"]["train"]["chars"]]).tolist()
    )
    assert meta["top_chars"][0][0] == " "


def test_a_file_name_that_is_not_utf8_is_recorded_readably(tmp_path):
    name = "n\udcff.txt"  # the bytes b"n\xff.txt", as Python holds a name that is not UTF-8
    (tmp_path / name).write_text("hello world " * 100)
    meta = tokenize_corpus([str(tmp_path / name)], tmp_path / "d")
    assert meta["sources"]["files"][0]["name"].endswith("n\ufffd.txt")
    assert json.loads((tmp_path / "d" / "meta.json").read_text(encoding="utf-8"))["sources"]
