"""The kinds of model charrnn trains, in one registry: what data each reads and how the command
line marks it, its default model, and the module that trains, predicts and scores it. The rest
of the code asks the kind (`kinds.get(name)`, `kinds.of_data(meta)`) instead of testing a
string. Importing this costs nothing: a kind's module (torch and all) is imported when its
task is made."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

from charrnn.errors import CharrnnError, UsageError


@dataclass(frozen=True)
class Kind:
    """A registry entry."""

    name: str  # in checkpoints and the model registry
    models: str  # its models, in messages
    data: str  # a data directory's meta.json "kind"
    reads: str  # what its data is, in messages
    flag: str | None  # the flag that marks such input text (None: plain text, the default)
    default_model: str  # when --model is not given
    task: str  # "module:Class": what the training loop drives
    model_fields: tuple[str, ...]  # the ModelConfig fields only some kinds have: its own
    train_fields: tuple[str, ...]  # ... and the TrainConfig fields
    writer: str  # "module:function" that tokenizes its text into a data directory
    reader: str  # "module:function" that opens such a directory, given (path, meta)
    data_options: tuple[str, ...] = ()  # the writer's own options that runs pass on

    def make_task(self, dataset, train_config, device, where: dict):
        """The training task of this kind over `dataset` (see charrnn.train)."""
        return _resolve(self.task).for_run(dataset, train_config, device, where)

    def write_data(self, inputs, out_dir, config, **options) -> dict:
        """Tokenize `inputs` into the data directory `out_dir`; its meta data."""
        return _resolve(self.writer)(inputs, out_dir, config, **options)

    def read_data(self, path, meta: dict):
        """The dataset of the data directory `path` (its meta.json already read)."""
        return _resolve(self.reader)(path, meta)


def _resolve(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


KINDS: dict[str, Kind] = {
    "lm": Kind(
        "lm",
        "language models",
        "lm",
        "plain text",
        None,
        "lstm",
        "charrnn.kinds.lm:LMTask",
        ("tie_weights",),
        ("seq_len", "batching", "reset_every"),
        "charrnn.data:tokenize_corpus",
        "charrnn.data:load_text_dataset",
    ),
    "seq2seq": Kind(
        "seq2seq",
        "seq2seq models",
        "pairs",
        "parallel text",
        "--pairs",
        "seq2seq-gru",
        "charrnn.kinds.seq2seq:PairTask",
        ("attention", "bidirectional", "input_feeding", "scaled_attention", "tie_weights"),
        ("scheduled_sampling", "label_smoothing"),
        "charrnn.pairs:tokenize_pairs",
        "charrnn.pairs:load_pair_dataset",
    ),
    "classify": Kind(
        "classify",
        "classifiers",
        "labels",
        "labelled text",
        "--labels",
        "classify-gru",
        "charrnn.kinds.classify:ClassifyTask",
        ("bidirectional", "pooling"),  # a classifier's output is labels: nothing to tie
        ("seq_len", "class_weights", "best_on", "init_from"),
        "charrnn.labels:tokenize_labels",
        "charrnn.labels:load_label_dataset",
        ("label_column",),
    ),
}
OWN_MODEL_FIELDS = {name for kind in KINDS.values() for name in kind.model_fields}
OWN_TRAIN_FIELDS = {name for kind in KINDS.values() for name in kind.train_fields}
_BY_DATA = {kind.data: kind for kind in KINDS.values()}


def with_field(name: str) -> list[str]:
    """The kinds that have the model or training setting `name` (every kind, for a setting
    no kind owns)."""
    own = OWN_MODEL_FIELDS | OWN_TRAIN_FIELDS
    return [
        k.name for k in KINDS.values() if name not in own or name in k.model_fields + k.train_fields
    ]


def get(name: str) -> Kind:
    """The kind `name` (as a checkpoint or a registry entry names it)."""
    return KINDS[name]


def of_data(meta: dict, where: str = "data directory") -> Kind:
    """The kind of model a data directory's data trains (by its meta.json)."""
    kind = _BY_DATA.get(meta.get("kind", "lm"))
    if kind is None:
        raise CharrnnError(
            where,
            f"holds data of an unknown kind '{meta.get('kind')}'",
            "tokenize it again with this charrnn, or upgrade charrnn",
        )
    return kind


def for_data(name: str) -> Kind:
    """The kind whose data directories are of kind `name` (lm, pairs, labels)."""
    return _BY_DATA[name]


def by_flag(flag: str) -> Kind:
    """The kind whose input text `flag` (--pairs, --labels) marks."""
    return next(kind for kind in KINDS.values() if kind.flag == flag)


def data_kind(inputs: Sequence[str | None], pairs: bool = False, labels: bool = False) -> str:
    """What INPUT is, as a data directory's kind (lm, pairs or labels): what --pairs or
    --labels say, or a built-in task's name (builtin:dates is parallel, builtin:plays
    labelled: corpus.TASK_BUILTINS)."""
    from charrnn import corpus

    if pairs and labels:
        raise UsageError("--labels", "and --pairs mark different kinds of text", "pass one of them")
    if pairs or labels:
        return by_flag("--pairs" if pairs else "--labels").data
    for item in inputs:
        if item is not None and corpus.is_builtin(item):
            task = corpus.TASK_BUILTINS.get(item[len(corpus.BUILTIN_PREFIX) :])
            if task is not None:
                return by_flag(task[1]).data
    return "lm"
