"""Char and byte-level BPE tokenizers: exact round-trips, HF compatibility, safe cutting."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import HOSTILE
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import pre_tokenizers

from charrnn import tokenizer as tk
from charrnn.errors import CharrnnError, UsageError


def _bpe(text: str, vocab_size: int = 400, **kw) -> tk.BPETokenizer:
    return tk.BPETokenizer.train([text], vocab_size=vocab_size, **kw)


def test_char_round_trip_hostile_unicode():
    tok = tk.CharTokenizer.build(HOSTILE)
    ids = tok.encode(HOSTILE)
    assert len(ids) == len(HOSTILE)  # one id per code point, not per byte
    assert tok.decode(ids) == HOSTILE
    assert tk.UNK_ID not in ids
    assert ids.dtype == np.uint16


def test_char_ids_match_naive_loop():
    tok = tk.CharTokenizer.build(HOSTILE)
    stoi = {c: i for i, c in enumerate(tok.chars) if c}
    assert tok.encode(HOSTILE).tolist() == [stoi[c] for c in HOSTILE]
    assert tok.encode("plain ascii").tolist() == [stoi.get(c, tk.UNK_ID) for c in "plain ascii"]


def test_char_unknown_characters_map_to_unk():
    tok = tk.CharTokenizer.build("abc")
    ids = tok.encode("abzc\u00e9")
    assert ids.tolist() == [4, 5, tk.UNK_ID, 6, tk.UNK_ID]
    assert tok.unknown_count(ids) == 2
    assert tok.decode(ids) == "abc"  # special tokens, <unk> included, are dropped


def test_special_ids_fixed_for_both_kinds():
    for tok in (tk.CharTokenizer.build("xyz"), _bpe("hello world " * 50)):
        vocab = tok.hf.get_vocab()
        assert [vocab[s] for s in tk.SPECIALS] == [0, 1, 2, 3]
        assert (tk.PAD_ID, tk.BOS_ID, tk.EOS_ID, tk.UNK_ID) == (0, 1, 2, 3)


def test_bpe_round_trip_hostile_and_unseen_text():
    tok = _bpe("the quick brown fox jumps over the lazy dog\n" * 100)
    for text in (HOSTILE, "never seen: \u00fe\u00ff \U0001f600", "", " ", "\r\n\r\n"):
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert tk.UNK_ID not in ids


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_hf_from_file_gives_same_ids_and_text(tmp_path, kind):
    tok = tk.CharTokenizer.build(HOSTILE) if kind == "char" else _bpe(HOSTILE * 20, 500)
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    hf = HFTokenizer.from_file(str(path))
    ids = tok.encode(HOSTILE)
    assert hf.encode(HOSTILE).ids == ids.tolist()
    assert hf.decode(ids.tolist()) == HOSTILE
    # The literal text "<unk>" is text, not the special token.
    assert tk.UNK_ID not in hf.encode("<unk>").ids


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_normalization_matches_hf_file(tmp_path, kind):
    # ... and a word-final capital sigma, which Python's str.lower() alone turns into the
    # final form while the HF normalizer lowercases letter by letter
    text = "Caf\u00e9 CAFE\u0301 \u212b \uff21\uff22 \u00c5ngstr\u00f6m \ufb01ne "
    text += "\u039f\u0394\u039f\u03a3."
    kw = {"lowercase": True, "normalize": "nfkc"}
    if kind == "char":
        tok = tk.CharTokenizer.build(tk.normalize_text(text, lowercase=True, form="nfkc"), **kw)
    else:
        tok = _bpe(tk.normalize_text(text * 20, lowercase=True, form="nfkc"), **kw)
    tok.save(tmp_path / "t.json")
    hf = HFTokenizer.from_file(str(tmp_path / "t.json"))
    assert hf.encode(text).ids == tok.encode(text).tolist()
    assert tok.decode(tok.encode(text)) == tk.normalize_text(text, lowercase=True, form="nfkc")
    again = tk.load(tmp_path / "t.json")
    assert (again.lowercase, again.normalize_form) == (True, "nfkc")


def test_json_round_trip_restores_kind_and_ids():
    for tok in (tk.CharTokenizer.build(HOSTILE), _bpe(HOSTILE * 10, 450)):
        again = tk.from_json(tok.to_json())
        assert type(again) is type(tok)
        assert again.encode(HOSTILE).tolist() == tok.encode(HOSTILE).tolist()


def test_byte_alphabet_matches_hf():
    assert set(tk._byte_decoder()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert sorted(tk._byte_decoder().values()) == list(range(256))


def test_safe_cuts_do_not_change_bpe_encoding():
    rng = random.Random(1)
    alphabet = [
        "a",
        "b",
        " ",
        "  ",
        "\n",
        "\n\n",
        "\t",
        "'s",
        "12",
        "!?",
        "\u00e9",
        "\U0001f600",
        "\r\n",
    ]
    tok = _bpe("".join(rng.choice(alphabet) for _ in range(20000)), 600)
    for _ in range(20):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(50, 3000)))
        whole = tok.hf.encode(text).ids
        pieces = tk.split_for_encoding(text, piece_chars=rng.randint(5, 80))
        assert "".join(pieces) == text
        assert [i for p in pieces for i in tok.hf.encode(p).ids] == whole
        cut = tk.last_safe_cut(text)
        assert [*tok.hf.encode(text[:cut]).ids, *tok.hf.encode(text[cut:]).ids] == whole


def test_long_text_bpe_encode_equals_hf():
    words = ["alpha", "beta", "gamma", "\n", " ", "  ", "delta!", "\u00fcber", "\U0001f680"]
    rng = random.Random(2)
    text = "".join(rng.choice(words) for _ in range(40000))  # longer than one piece
    tok = _bpe(text, 500)
    assert len(text) > tk.PIECE_CHARS
    assert tok.encode(text).tolist() == tok.hf.encode(text).ids


def test_stream_decoder_handles_split_utf8():
    tok = _bpe("\u00e9\u00e9 \U0001f600 \u65e5\u672c", 262)  # tiny vocab: multi-byte chars split
    ids = tok.encode("\U0001f600\u65e5")
    assert len(ids) > 2
    stream = tok.stream_decoder()
    pieces = [stream.feed([i]) for i in ids.tolist()] + [stream.flush()]
    assert "".join(pieces) == "\U0001f600\u65e5"
    assert "" in pieces  # some ids ended inside a character and printed nothing yet


def test_vocab_size_checks():
    with pytest.raises(UsageError, match="too small for the alphabet"):
        tk.check_vocab_size("bpe", 100)
    with pytest.raises(UsageError, match="absurdly large"):
        tk.check_vocab_size("bpe", 10**9)
    with pytest.raises(UsageError, match="too small"):
        tk.check_vocab_size("char", 10, alphabet=26)
    tk.check_vocab_size("char", 30, alphabet=26)


def test_foreign_tokenizer_json_is_rejected(tmp_path):
    with pytest.raises(CharrnnError, match="not a valid tokenizer"):
        tk.from_json("{not json")
    hf = HFTokenizer.from_str(
        tk.CharTokenizer.build("ab").to_json().replace('"<pad>":0', '"<x>":0')
    )
    with pytest.raises(CharrnnError, match="not a charrnn tokenizer"):
        tk.from_json(hf.to_str())
