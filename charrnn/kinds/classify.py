"""The classify kind: batches of labelled texts, the loss with optional class weights, a full
validation pass (loss, accuracy, F1, the confusion matrix: as scikit-learn defines them), and
prediction for `charrnn classify` and `eval`.

Every text is read as its ids and <eos> (so that an empty text is one token, and the forward
direction sees where the text ends), cut to `seq_len` tokens in training; prediction reads
whole texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from charrnn.batching import GroupedBatches
from charrnn.errors import CharrnnError, UsageError
from charrnn.tokenizer import EOS_ID, PAD_ID

EVAL_BATCH = 64  # texts per batch when scoring and predicting
CLASS_WEIGHTS = ("none", "balanced")


def make_batch(texts: list[np.ndarray], cap: int | None = None) -> tuple[Tensor, Tensor]:
    """(ids (B, T) padded, lengths (B,)) of texts of ids, each ended by <eos> and, with `cap`,
    cut to its first cap - 1 ids."""
    rows = [np.append(t[: cap - 1] if cap else t, EOS_ID).astype(np.int64) for t in texts]
    lengths = torch.tensor([len(r) for r in rows])
    out = np.full((len(rows), int(lengths.max())), PAD_ID, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out), lengths


def class_weights(targets: np.ndarray, classes: int, how: str) -> Tensor | None:
    """Per-class loss weights: None, or (`balanced`) n / (classes * count), so that every class
    weighs as much in the loss as it would in balanced data."""
    if how == "none":
        return None
    counts = np.bincount(targets, minlength=classes).astype(np.float64)
    weights = len(targets) / (classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


@dataclass
class ClassifyResult:
    """Scores of a validation pass: summed loss (nats), and the confusion matrix (rows: true
    labels, columns: predicted) that accuracy and F1 come from."""

    nll: float
    confusion: np.ndarray
    labels: list[str]
    full: bool = True
    sample_loss: float | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        scores = classification_scores(self.confusion, self.labels)
        examples = max(int(self.confusion.sum()), 1)
        return {"loss": self.nll / examples, **scores, **self.extra}

    def comparable_loss(self) -> float:
        return self.nll / max(int(self.confusion.sum()), 1)


def classification_scores(confusion: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, macro- and weighted-average F1, and each label's precision, recall, F1 and
    support, from a confusion matrix (rows: true labels, columns: predicted), as
    scikit-learn's `classification_report` defines them (a ratio with nothing to divide is
    0); the matrix itself comes back as lists."""
    confusion = np.asarray(confusion, dtype=np.int64)
    hits = np.diag(confusion).astype(np.float64)
    support = confusion.sum(1)
    predicted = confusion.sum(0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    examples = int(support.sum())
    per_label = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float(hits.sum() / max(examples, 1)),
        "macro_f1": float(f1.mean()) if len(f1) else 0.0,
        "weighted_f1": float((f1 * support).sum() / max(examples, 1)),
        "examples": examples,
        "labels": per_label,
        "confusion": confusion.tolist(),
    }


def confusion_matrix(targets: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) counts: row = true label, column = predicted label."""
    flat = np.bincount(targets * classes + predicted, minlength=classes * classes)
    return flat.reshape(classes, classes)


@torch.no_grad()
def predict(
    model: nn.Module,
    texts: list[np.ndarray],
    device: torch.device,
    *,
    weights: bool = False,
    batch_size: int = EVAL_BATCH,
) -> tuple[Tensor, list[np.ndarray] | None]:
    """Log-probabilities (N, C) of every text's labels, in order; with `weights` (attention
    pooling), each text's pooling weights over its tokens (its <eos> last). Texts are batched
    by length; packing makes each prediction independent of the others."""
    was_training = model.training
    model.eval()
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = torch.empty(len(texts), model.head.out_features)
    attention: list[np.ndarray | None] = [None] * len(texts)
    for start in range(0, len(texts), batch_size):
        rows = order[start : start + batch_size]
        ids, lengths = make_batch([texts[i] for i in rows])
        logits, pooled = model(ids.to(device), lengths, weights=True)
        out[torch.from_numpy(rows)] = torch.log_softmax(logits.float(), -1).cpu()
        if weights and pooled is not None:
            for j, i in enumerate(rows):
                attention[i] = pooled[j, : int(lengths[j])].float().cpu().numpy()
    model.train(was_training)
    return out, (attention if weights else None)


def score(model: nn.Module, split, labels: list[str], device: torch.device) -> ClassifyResult:
    """Loss and confusion over a split of labelled texts (whole texts)."""
    texts = [split.example(i)[0] for i in range(len(split))]
    logp, _ = predict(model, texts, device)
    targets = torch.from_numpy(split.targets.astype(np.int64))
    nll = float(F.nll_loss(logp, targets, reduction="sum"))
    predicted = logp.argmax(-1).numpy()
    return ClassifyResult(nll, confusion_matrix(split.targets, predicted, len(labels)), labels)


class ClassifyTask:
    """What the training loop needs from a classifier."""

    kind = "classify"

    def __init__(
        self,
        train,
        val,
        val_stats: dict | None,
        labels: list[str],
        *,
        batch_size: int,
        seq_len: int,
        seed: int,
        device: torch.device,
        weighting: str = "none",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        lengths = np.minimum(train.lengths + 1, seq_len)
        self.batches = GroupedBatches(
            lengths, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size
        )
        self.train, self.labels = train, labels
        self.val = val if val is not None and len(val) else None
        self.val_stats = val_stats
        self.seq_len = seq_len
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.tokens_per_step = int(round(batch_size * world_size * float(lengths.mean())))
        self.last_tokens = self.tokens_per_step
        self.device = device
        weights = class_weights(train.targets.astype(np.int64), len(labels), weighting)
        self.weights = None if weights is None else weights.to(device)
        self.world_size = world_size
        self.progress = 0.0

    @classmethod
    def for_run(cls, dataset, train_config, device, where: dict) -> ClassifyTask:
        """The task of a run over a labelled data directory."""
        has_val = "val" in dataset.splits
        return cls(
            dataset.split("train"),
            dataset.split("val") if has_val else None,
            dataset.stats("val") if has_val else None,
            dataset.labels,
            batch_size=train_config.batch_size,
            seq_len=train_config.seq_len,
            seed=train_config.seed,
            device=device,
            weighting=train_config.class_weights,
            **where,
        )

    def batch(self, epoch: int, index: int):
        """The batch at this data position: (ids, lengths, targets), on the device."""
        rows = self.batches.rows(epoch, index)
        ids, lengths = make_batch([self.train.example(int(i))[0] for i in rows], self.seq_len)
        targets = torch.from_numpy(self.train.targets[rows].astype(np.int64))
        return ids.to(self.device), lengths, targets.to(self.device)

    def loss(self, model: nn.Module, batch) -> Tensor:
        """Mean cross-entropy of the batch's labels (weighted by class, if asked)."""
        ids, lengths, targets = batch
        self.last_tokens = int(lengths.sum()) * self.world_size
        return F.cross_entropy(model(ids, lengths).float(), targets, weight=self.weights)

    def reset(self) -> None:
        """Nothing is carried between batches."""

    def log_fields(self) -> dict:
        return {}

    def sample_validation(self, tokens: int) -> None:
        """Validation sets of labelled texts are small: every evaluation scores all of it."""

    def evaluate(self, model: nn.Module, full: bool = False) -> ClassifyResult | None:
        """Loss, accuracy and F1 over the whole validation split."""
        if self.val is None:
            return None
        return score(model, self.val, self.labels, self.device)

    def eval_cost(self, full: bool) -> int:
        """Tokens an evaluation reads."""
        return 0 if self.val is None else int(self.val.lengths.sum()) + len(self.val)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, data: dict) -> None:
        pass


@dataclass
class Prediction:
    """One text's labels, most probable first, and (attention pooling) its tokens' weights."""

    labels: list[tuple[str, float]]  # (label, probability), most probable first
    tokens: list[str] | None = None  # the text's tokens, <eos> last
    weights: list[float] | None = None  # the pooling's weight on each

    def as_dict(self, top_k: int | None = None) -> dict:
        label, probability = self.labels[0]
        shown = self.labels[:top_k] if top_k else self.labels
        found = {"label": label, "probability": probability, "probabilities": dict(shown)}
        if self.weights is not None:
            found["tokens"], found["weights"] = self.tokens, self.weights
        return found


def classify(trained, texts: list[np.ndarray], explain: bool = False) -> list[Prediction]:
    """The labels of texts (token ids, as `generate.encode_prompt` gives them without its
    <bos>) by a trained classifier, in order; with `explain`, each token's pooling weight
    (attention pooling only)."""
    from charrnn import device as devices

    with devices.autocast(trained.device, trained.precision):
        logp, weights = predict(trained.model, texts, trained.device, weights=explain)
    probs = logp.exp().numpy()
    found = []
    for i, row in enumerate(probs):
        order = np.argsort(-row, kind="stable")
        labels = [(trained.labels[j], float(row[j])) for j in order]
        if weights is None or weights[i] is None:
            found.append(Prediction(labels))
            continue
        tokens = [trained.tokenizer.token_text(int(t)) for t in texts[i]] + ["<eos>"]
        found.append(Prediction(labels, tokens, [float(w) for w in weights[i]]))
    return found


def init_from_lm(model: nn.Module, path, tokenizer) -> str:
    """Start a classifier's encoder from a trained language model (pretrain on unlabelled
    text, then fine-tune on the labelled set): its embeddings and recurrent weights go to the
    classifier's forward direction (the first layer only, when bidirectional: the layers
    above read both directions). The language model must read the same vocabulary, with the
    same cell and embedding size and as many units as a direction has. Returns a note."""
    from charrnn.trained import load_trained

    lm = load_trained(path)
    where = str(lm.path)
    if lm.kind != "lm":
        raise CharrnnError(where, f"is a {lm.kind} model, not a language model", _LM_FIX)
    if lm.tokenizer.to_json() != tokenizer.to_json():
        raise CharrnnError(
            where,
            "reads another vocabulary than this labelled data",
            "train the language model on text tokenized with the data's vocabulary "
            "(charrnn tokenize TEXT -o DATA --tokenizer LABELLED_DATA)",
        )
    mine, theirs = model.config, lm.model.config
    directions = 2 if mine.bidirectional else 1
    for what, a, b in (
        ("cell", mine.cell, theirs.cell),
        ("embedding size", mine.embed_size, theirs.embed_size),
        ("units per direction", mine.hidden_size // directions, theirs.hidden_size),
    ):
        if a != b:
            raise UsageError(
                "--init-from",
                f"the language model's {what} is {b}, the classifier's {a}",
                f"train the classifier with --model classify-{theirs.cell} --embed-size "
                f"{theirs.embed_size} --hidden-size {theirs.hidden_size * directions}",
            )
    layers = 1 if mine.bidirectional else min(mine.num_layers, theirs.num_layers)
    with torch.no_grad():
        model.embed.weight.copy_(lm.model.embed.weight)
        for k in range(layers):  # each layer's forward direction
            ours, source = model.rnn.layer_weights()[k], lm.model.rnn.layer_weights()[k]
            for mine_w, theirs_w in zip(ours, source, strict=True):
                mine_w.copy_(theirs_w)
    return f"encoder started from {where}: its embeddings and {layers} recurrent layer(s)"


_LM_FIX = "pass a run of charrnn train on plain text"
