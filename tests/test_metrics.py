"""Scores equal sacrebleu's and rouge-score's own results."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from charrnn.errors import CharrnnError
from charrnn.metrics import _reference_text, text_scores
from charrnn.tokenizer import CharTokenizer

# sacrebleu's documented example (README, "Using the Python API")
REFS = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
]
HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
PER_HYP = [list(r) for r in zip(*REFS, strict=True)]


def test_bleu_and_chrf_equal_sacrebleu_documented_example():
    scores = text_scores(HYPS, PER_HYP)
    assert round(scores["bleu"], 2) == 48.53  # the number the sacrebleu README prints
    assert round(scores["chrf"], 2) == 59.73
    assert scores["bleu"] == BLEU().corpus_score(HYPS, REFS).score
    assert scores["chrf"] == CHRF().corpus_score(HYPS, REFS).score
    assert scores["bleu_signature"].startswith("nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp")
    assert (scores["hyp_len"], scores["ref_len"]) == (17, 18)
    assert scores["exact_match"] == pytest.approx(100 / 3)


def test_rouge_equals_rouge_score():
    scores = text_scores(HYPS, PER_HYP)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    for key in ("rouge1", "rouge2", "rougeL"):
        expected = sum(
            scorer.score_multi(refs, hyp)[key].fmeasure
            for hyp, refs in zip(HYPS, PER_HYP, strict=True)
        ) / len(HYPS)
        assert scores[key] == pytest.approx(100 * expected)
    single = text_scores(["the cat sat"], [["the cat sat on the mat"]])
    expected = scorer.score("the cat sat on the mat", "the cat sat")["rouge1"].fmeasure
    assert single["rouge1"] == pytest.approx(100 * expected)


def test_rouge_counts_words_of_every_script():
    # rouge-score's default tokenizer keeps a-z and 0-9 only: "été" became "t", Cyrillic nothing
    same = text_scores(["il a été là", "привет мир"], [["il a été là"], ["привет мир"]])
    assert same["rouge1"] == same["rougeL"] == pytest.approx(100.0)
    other = text_scores(["il a été là"], [["il a eu là"]])  # 3 of 4 words in common
    assert other["rouge1"] == pytest.approx(75.0)


def test_mismatched_counts_are_errors():
    with pytest.raises(CharrnnError, match="2 references for 3 hypotheses"):
        text_scores(HYPS, PER_HYP[:2])
    with pytest.raises(CharrnnError, match="nothing to score"):
        text_scores([], [])


def test_split_references_keep_a_miss_for_each_unknown_character():
    """A data directory's reference holds <unk> where its vocabulary lacked a character: that
    is a character no output can match, not a character that was never there."""
    tok = CharTokenizer.build("abc ")
    ids = tok.encode("ab \u00c9c \u00c9")
    assert _reference_text(tok, ids) == "ab \ufffdc \ufffd"
    exact = text_scores(["ab c "], [[_reference_text(tok, ids)]])
    assert exact["exact_match"] == 0.0 and exact["chrf"] < 100
