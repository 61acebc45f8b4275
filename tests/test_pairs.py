"""Parallel text on disk: pairs, splits, filters, vocabularies, the built-in dates task."""

from __future__ import annotations

import datetime
import random

import pytest

from charrnn import corpus
from charrnn.config import TokenizeConfig
from charrnn.data import load_dataset
from charrnn.dates import date_pair, write_dates
from charrnn.errors import CharrnnError
from charrnn.pairs import tokenize_pairs

PAIRS = [
    ("Go.", "Va !"),
    ("Hi.", "Salut !"),
    ("Run!", "Cours\u00a0!"),
    ("Wow!", "\u00c7a alors\u00a0!"),
    ("I see.", "Je comprends."),
    ("Who?", "Qui ?"),
    ("\u65e5\u672c", "Japon"),
] * 6


def _tsv(tmp_path, pairs=PAIRS, name="p.tsv"):
    path = tmp_path / name
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def _decoded(ds, split):
    pairs = ds.split(split)
    return [
        (ds.source_tokenizer.decode(pairs.pair(i)[0]), ds.target_tokenizer.decode(pairs.pair(i)[1]))
        for i in range(len(pairs))
    ]


def test_tsv_round_trip_with_tail_split(tmp_path):
    meta = tokenize_pairs([str(_tsv(tmp_path))], tmp_path / "d", TokenizeConfig(val_frac=0.1))
    ds = load_dataset(tmp_path / "d")
    n = len(PAIRS)
    n_val = round(n * 0.1)
    assert meta["splits"]["train"]["pairs"] == n - n_val and meta["splits"]["val"]["pairs"] == n_val
    assert _decoded(ds, "val") == PAIRS[n - n_val :]
    train = _decoded(ds, "train")
    assert all(t == PAIRS[i] for i, t in enumerate(train) if "\u65e5" not in PAIRS[i][0])
    assert meta["splits"]["train"]["target"]["chars"] == sum(len(t) for _, t in PAIRS[: n - n_val])


def test_two_aligned_files_equal_tsv(tmp_path):
    (tmp_path / "src.txt").write_text("".join(s + "\n" for s, _ in PAIRS), encoding="utf-8")
    (tmp_path / "tgt.txt").write_text("".join(t + "\r\n" for _, t in PAIRS), encoding="utf-8")
    tokenize_pairs([str(tmp_path / "src.txt"), str(tmp_path / "tgt.txt")], tmp_path / "a")
    tokenize_pairs([str(_tsv(tmp_path))], tmp_path / "b")
    for f in ("train.source.bin", "train.target.idx", "val.target.bin", "source.tokenizer.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_misaligned_files_and_missing_tab_are_errors(tmp_path):
    (tmp_path / "src.txt").write_text("a\nb\nc\n")
    (tmp_path / "tgt.txt").write_text("x\ny\n")
    with pytest.raises(CharrnnError, match="misaligned: 3 source lines but 2 target lines"):
        tokenize_pairs([str(tmp_path / "src.txt"), str(tmp_path / "tgt.txt")], tmp_path / "d")
    (tmp_path / "bad.tsv").write_text("one\ttwo\nno tab here\n")
    with pytest.raises(CharrnnError, match="bad.tsv line 2: no TAB"):
        tokenize_pairs([str(tmp_path / "bad.tsv")], tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_empty_and_long_pairs_are_filtered_and_counted(tmp_path):
    pairs = PAIRS + [("", "empty source"), ("empty target", "  "), ("x" * 50, "long")]
    meta = tokenize_pairs([str(_tsv(tmp_path, pairs))], tmp_path / "d", max_chars=40)
    assert meta["filtered"] == {"empty": 2, "too_long": 1, "max_chars": 40}
    assert sum(s["pairs"] for s in meta["splits"].values()) == len(PAIRS)


def test_shared_vocabulary_and_bpe(tmp_path):
    meta = tokenize_pairs([str(_tsv(tmp_path))], tmp_path / "s", shared_vocab=True)
    assert meta["vocab"]["shared"]
    assert (tmp_path / "s" / "source.tokenizer.json").read_text() == (
        tmp_path / "s" / "target.tokenizer.json"
    ).read_text()
    ds = load_dataset(tmp_path / "s")  # a shared vocabulary reused stays shared
    vocabulary = (ds.source_tokenizer, ds.target_tokenizer)
    reused = tokenize_pairs([str(_tsv(tmp_path))], tmp_path / "r", vocabulary=vocabulary)
    assert reused["vocab"]["shared"]
    tokenize_pairs(
        [str(_tsv(tmp_path))],
        tmp_path / "b",
        TokenizeConfig(vocab="bpe", vocab_size=300, val_frac=0.0),
    )
    ds = load_dataset(tmp_path / "b")
    assert _decoded(ds, "train") == PAIRS  # byte-level: exact, no unknowns


def test_unknown_characters_are_counted_exactly_per_side(tmp_path):
    tokenize_pairs([str(_tsv(tmp_path))], tmp_path / "v")
    ds = load_dataset(tmp_path / "v")
    # 60 characters the vocabularies lack, the k-th k + 1 times, on the source side
    odd = [(chr(0x4E00 + k) * (k + 1), "ok") for k in range(60)]
    meta = tokenize_pairs(
        [str(_tsv(tmp_path, PAIRS + odd, "odd.tsv"))],
        tmp_path / "d",
        vocabulary=(ds.source_tokenizer, ds.target_tokenizer),
    )
    want = [[chr(0x4E00 + k), k + 1] for k in range(59, 39, -1)]  # the 20 most frequent
    assert meta["unknown_chars"]["source"] == want
    assert sum(s["source"]["unknown"] for s in meta["splits"].values()) == 60 * 61 // 2


def test_hash_split_is_deterministic(tmp_path):
    pairs = [(f"s{i}", f"t{i}") for i in range(2000)]
    a = tokenize_pairs([str(_tsv(tmp_path, pairs))], tmp_path / "a", shuffle_seed=3)
    b = tokenize_pairs([str(_tsv(tmp_path, pairs))], tmp_path / "b", shuffle_seed=3)
    assert a["splits"] == b["splits"] and a["split_method"] == "hash"
    assert 150 < a["splits"]["val"]["pairs"] < 250
    val = {s for s, _ in _decoded(load_dataset(tmp_path / "a"), "val")}
    assert val != {s for s, _ in pairs[-a["splits"]["val"]["pairs"] :]}  # not the tail


def test_small_chunks_give_identical_output(tmp_path, monkeypatch):
    path = _tsv(tmp_path, PAIRS * 20)
    tokenize_pairs([str(path)], tmp_path / "big")
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 7)
    tokenize_pairs([str(path)], tmp_path / "small")
    for f in ("train.source.bin", "train.source.idx", "val.target.bin", "val.target.idx"):
        assert (tmp_path / "big" / f).read_bytes() == (tmp_path / "small" / f).read_bytes()


def test_dates_task_is_deterministic_and_correct(tmp_path):
    write_dates(tmp_path / "a.tsv", count=500)
    write_dates(tmp_path / "b.tsv", count=500)
    assert (tmp_path / "a.tsv").read_text() == (tmp_path / "b.tsv").read_text()
    rng = random.Random(1)
    for _ in range(200):
        day = datetime.date(1900, 1, 1) + datetime.timedelta(days=rng.randint(0, 70000))
        source, target = date_pair(day, rng)
        assert target == day.isoformat() and str(day.year) in source
    meta = tokenize_pairs(["builtin:dates"], tmp_path / "d")
    assert meta["splits"]["train"]["pairs"] + meta["splits"]["val"]["pairs"] == 20000


def test_truncated_index_is_detected(tmp_path):
    tokenize_pairs([str(_tsv(tmp_path))], tmp_path / "d")
    idx = tmp_path / "d" / "train.source.idx"
    idx.write_bytes(idx.read_bytes()[:-8])
    with pytest.raises(CharrnnError, match="truncated"):
        load_dataset(tmp_path / "d")


def test_existing_vocabularies_bring_their_normalization(tmp_path):
    # eval --src/--ref encodes new pairs with a lowercasing model's tokenizers: the text must
    # be lowercased as the model's was, not scored as <unk> for every capital
    tokenize_pairs([str(_tsv(tmp_path))], tmp_path / "a", TokenizeConfig(lowercase=True))
    ds = load_dataset(tmp_path / "a")
    other = _tsv(tmp_path, [("Go. Hi.", "Va ! Salut !")] * 4, name="other.tsv")
    meta = tokenize_pairs(
        [str(other)],
        tmp_path / "b",
        TokenizeConfig(val_frac=0, test_frac=0),
        vocabulary=(ds.source_tokenizer, ds.target_tokenizer),
    )
    train = meta["splits"]["train"]
    assert train["source"]["unknown"] == train["target"]["unknown"] == 0
    assert not meta["vocab"]["shared"]  # two vocabularies reused stay two
    assert _decoded(load_dataset(tmp_path / "b"), "train")[0] == ("go. hi.", "va ! salut !")


def test_auto_vocabulary_is_bpe_for_words_and_char_for_dates(tmp_path):
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(1500)]
    sentences = [
        (" ".join(rng.sample(words, 6)) + ".", " ".join(rng.sample(words, 5))) for _ in range(600)
    ]
    meta = tokenize_pairs([str(_tsv(tmp_path, sentences))], tmp_path / "w")  # auto: the default
    vocab = meta["vocab"]
    assert vocab["source"]["kind"] == "bpe" and vocab["shared"]
    assert vocab["source"]["size"] == 1000  # ~1,500 words / 2.5, within the range
    assert vocab["picked"].startswith("bpe 1,000 shared:") and meta["options"]["vocab"] == "bpe"
    write_dates(tmp_path / "dates.tsv", count=300, seed=1)
    dates = tokenize_pairs([str(tmp_path / "dates.tsv")], tmp_path / "d")
    assert dates["vocab"]["source"]["kind"] == "char" and not dates["vocab"]["shared"]
    assert dates["vocab"]["picked"].startswith("char:")
    chosen = tokenize_pairs(
        [str(_tsv(tmp_path, sentences))], tmp_path / "c", TokenizeConfig(vocab="char")
    )
    assert chosen["vocab"]["source"]["kind"] == "char" and "picked" not in chosen["vocab"]
