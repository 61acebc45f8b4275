"""The classify kind: the classifier network against torch's own modules, pooling, padding
and batch independence, class weights, metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from charrnn import models
from charrnn.config import POOLINGS, ModelConfig
from charrnn.kinds.classify import (
    class_weights,
    classification_scores,
    confusion_matrix,
    make_batch,
)
from charrnn.tokenizer import EOS_ID, PAD_ID

CLASSIFIERS = [name for name, spec in models.MODELS.items() if spec.kind == "classify"]


def _model(name: str, pooling: str, bidirectional: bool = True, layers: int = 2):
    torch.manual_seed(0)
    config = ModelConfig(
        embed_size=6,
        hidden_size=10,
        num_layers=layers,
        dropout=0.0,
        pooling=pooling,
        bidirectional=bidirectional,
    )
    return models.build(name, config, 30, num_classes=3).eval()


def _texts(seed: int = 1, n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(4, 30, size=int(rng.integers(1, 12))) for _ in range(n)]


def test_registry_has_a_classifier_per_cell():
    assert sorted(models.MODELS[n].cell for n in CLASSIFIERS) == ["gru", "lstm", "rnn"]


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_parameters_match_the_formula(name, pooling):
    config = ModelConfig(embed_size=7, hidden_size=12, num_layers=2, pooling=pooling)
    model = models.build(name, config, 25, num_classes=4)
    assert models.count_parameters(model) == models.expected_parameters(
        name, config, 25, num_classes=4
    )


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_a_prediction_depends_neither_on_padding_nor_on_the_batch(name, pooling):
    model = _model(name, pooling)
    texts = _texts()
    ids, lengths = make_batch(texts)
    together = model(ids, lengths)
    for i, text in enumerate(texts):
        alone = model(*make_batch([text]))
        padded, plen = make_batch([text])
        padded = F.pad(padded, (0, 9), value=PAD_ID)  # more padding than any batch had
        assert torch.allclose(together[i], alone[0], atol=1e-5)
        assert torch.allclose(model(padded, plen)[0], alone[0], atol=1e-5)


def test_last_pooling_is_each_directions_final_state():
    """[h_T of the forward GRU ; h_1 of the backward GRU], by running torch's own GRU on
    the unpadded text, then the head."""
    model = _model("classify-gru", "last", layers=1)
    text = _texts(3, 1)[0]
    ids, lengths = make_batch([text])
    x = model.embed(ids)  # (1, T, E)
    outputs, _ = model.rnn(x)  # no padding: every step is real
    half = model.config.hidden_size // 2
    pooled = torch.cat([outputs[0, -1, :half], outputs[0, 0, half:]])
    assert torch.allclose(model(ids, lengths)[0], model.head(pooled), atol=1e-6)


def test_weights_saved_before_the_shared_stack_still_load():
    """Classifier checkpoints written before it used RNNStack kept the torch module's weights
    at rnn.* (now rnn.rnn.*): they load and predict the same."""
    model = _model("classify-lstm", "max")
    old = {k.replace("rnn.rnn.", "rnn."): v for k, v in model.state_dict().items()}
    assert "rnn.weight_hh_l1_reverse" in old
    again = models.build("classify-lstm", model.config, 30, num_classes=3).eval()
    again.load_state_dict(old)
    ids, lengths = make_batch(_texts())
    assert torch.equal(again(ids, lengths), model(ids, lengths))
    residual = ModelConfig(**{**model.config.__dict__, "residual": True})
    deep = models.build("classify-gru", residual, 30, num_classes=3)
    deep.load_state_dict(deep.state_dict())  # its rnn.layers.* keys are left alone


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_attention_weights_sum_to_one_over_real_tokens(name):
    model = _model(name, "attention")
    ids, lengths = make_batch(_texts(5, 8))
    _, weights = model(ids, lengths, weights=True)
    assert torch.allclose(weights.sum(-1), torch.ones(len(lengths)), atol=1e-6)
    padding = torch.arange(ids.shape[1])[None] >= lengths[:, None]
    assert torch.all(weights[padding] == 0) and torch.all(weights[~padding] > 0)


def test_mean_and_max_pool_the_real_tokens_only():
    model = _model("classify-lstm", "mean", layers=1)
    text = _texts(7, 1)[0]
    ids, lengths = make_batch([text])
    states, _ = model.rnn(model.embed(ids))
    assert torch.allclose(model(ids, lengths)[0], model.head(states[0].mean(0)), atol=1e-6)
    model.config = ModelConfig(**{**model.config.__dict__, "pooling": "max"})
    assert torch.allclose(model(ids, lengths)[0], model.head(states[0].amax(0)), atol=1e-6)


def test_make_batch_ends_texts_and_cuts_them():
    ids, lengths = make_batch([np.array([5, 6, 7]), np.array([], dtype=np.int64)])
    assert lengths.tolist() == [4, 1]
    assert ids.tolist() == [[5, 6, 7, EOS_ID], [EOS_ID, PAD_ID, PAD_ID, PAD_ID]]
    ids, lengths = make_batch([np.arange(4, 20)], cap=5)
    assert lengths.tolist() == [5] and ids[0].tolist() == [4, 5, 6, 7, EOS_ID]


def test_balanced_class_weights():
    targets = np.array([0, 0, 0, 1])  # 3 of class 0, 1 of class 1, none of class 2
    weights = class_weights(targets, 3, "balanced")
    assert weights.tolist() == pytest.approx([4 / 9, 4 / 3, 4 / 3])
    assert class_weights(targets, 3, "none") is None


def test_classification_scores_against_hand_computed_values():
    # true \ predicted   a  b  c
    confusion = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 0]])
    scores = classification_scores(confusion, ["a", "b", "c"])
    assert scores["accuracy"] == pytest.approx(8 / 12)
    a, b, c = (scores["labels"][k] for k in "abc")
    assert (a["precision"], a["recall"]) == (pytest.approx(5 / 7), pytest.approx(5 / 6))
    assert (b["precision"], b["recall"]) == (pytest.approx(3 / 4), pytest.approx(3 / 6))
    assert c == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}  # nothing to divide
    f1_a, f1_b = 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6), 2 * (3 / 4) * (1 / 2) / (3 / 4 + 1 / 2)
    assert scores["macro_f1"] == pytest.approx((f1_a + f1_b + 0) / 3)
    assert scores["weighted_f1"] == pytest.approx((6 * f1_a + 6 * f1_b) / 12)
    assert scores["confusion"] == confusion.tolist()


def test_confusion_matrix_counts_pairs():
    found = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 0, 2]), 3)
    assert found.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_scoring_during_training_leaves_the_model_training():
    """An evaluation must not switch dropout off for the rest of training."""
    from charrnn.kinds.classify import predict

    model = _model("classify-gru", "max").train()
    predict(model, _texts(), torch.device("cpu"))
    assert model.training
    model.eval()
    predict(model, _texts(), torch.device("cpu"))
    assert not model.training
