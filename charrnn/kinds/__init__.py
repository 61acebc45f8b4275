"""The kinds of model charrnn trains, in one registry: what data each reads and how the command
line marks it, its models and their defaults, and the functions that write and read its data,
build, size, train and score its models, and put its summaries into words. The rest of the
code asks the kind (`kinds.get(name)`, `kinds.of_data(meta)`) instead of testing a string.
Importing this costs nothing: each function's module (torch and all) is imported when it is
first called."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

from charrnn.errors import CharrnnError, UsageError


@dataclass(frozen=True)
class Kind:
    """A registry entry: everything the shared code needs to know about one kind of model."""

    name: str  # in checkpoints and the model registry
    models: str  # its models, in messages
    one: str  # one of them, in messages
    data: str  # a data directory's meta.json "kind"
    reads: str  # what its data is, in messages
    flag: str | None  # the flag that marks such input text (None: plain text, the default)
    entries: dict[str, tuple[str, str]]  # its registry entries: name -> (cell, description)
    default_model: str  # when --model is not given
    defaults: dict[str, dict]  # {"model": ..., "train": ...}: over the dataclasses' defaults
    model_fields: tuple[str, ...]  # the ModelConfig fields only some kinds have: its own
    train_fields: tuple[str, ...]  # ... and the TrainConfig fields
    network: str  # "module:function" that builds its network (see charrnn.models.build)
    counts: str  # "module:Class" (torch-free) with parameters() and growth(): its size
    task: str  # "module:Class": what the training loop drives
    writer: str  # "module:function" that tokenizes its text into a data directory
    reader: str  # "module:function" that opens such a directory, given (path, meta)
    describer: str  # "module:function": a data directory's summary, from its meta data
    data_report: str  # "module:function": that summary as lines of text
    scorer: str  # "module:function" that `charrnn eval` calls (see Kind.score)
    report: str  # "module:function": the scorer's result as lines of text
    data_options: tuple[str, ...] = ()  # the writer's own options (tokenize's flags)
    eval_options: tuple[str, ...] = ()  # the scorer's own options (charrnn eval's flags)

    def make_task(self, dataset, train_config, device, where: dict):
        """The training task of this kind over `dataset` (see charrnn.train)."""
        return _resolve(self.task).for_run(dataset, train_config, device, where)

    def write_data(self, inputs, out_dir, config, **options) -> dict:
        """Tokenize `inputs` into the data directory `out_dir`; its meta data."""
        return _resolve(self.writer)(inputs, out_dir, config, **options)

    def read_data(self, path, meta: dict):
        """The dataset of the data directory `path` (its meta.json already read)."""
        return _resolve(self.reader)(path, meta)

    def describe_data(self, meta: dict) -> dict:
        """A summary of a data directory of this kind (`charrnn info`, --json)."""
        return _resolve(self.describer)(meta)

    def data_lines(self, summary: dict, verb: str) -> list[str]:
        """That summary in words, headed '<verb> <path>'."""
        return _resolve(self.data_report)(summary, verb)

    def score(self, trained, source, split, progress, **options) -> dict:
        """`charrnn eval`: the scores of a trained model of this kind on `source` (None: its
        run's validation split) or a data directory's `split`, with its own options."""
        return _resolve(self.scorer)(trained, source, split=split, progress=progress, **options)

    def report_lines(self, result: dict) -> list[str]:
        """The scorer's result, in words."""
        return _resolve(self.report)(result)

    def build(self, config, vocab_size: int, source_vocab_size, num_classes):
        """Its network (torch) for these sizes."""
        return _resolve(self.network)(config, vocab_size, source_vocab_size, num_classes)

    def parameters(self, cell: str, config, vocab_size: int, source_vocab_size, num_classes):
        """Its network's parameter count, by formula."""
        counts = _resolve(self.counts)
        return counts.parameters(cell, config, vocab_size, source_vocab_size, num_classes)

    def growth(self, cell: str) -> str:
        """How its parameter count grows with the sizes, in words."""
        return _resolve(self.counts).growth(cell)


def _resolve(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


KINDS: dict[str, Kind] = {
    "lm": Kind(
        name="lm",
        models="language models",
        one="a language model",
        data="lm",
        reads="plain text",
        flag=None,
        entries={
            "rnn": (
                "rnn",
                "Elman RNN language model (tanh; relu with --nonlinearity relu): "
                "the simplest, fastest, and quickest to forget",
            ),
            "gru": (
                "gru",
                "GRU language model: update and reset gates, three weight blocks per layer",
            ),
            "lstm": (
                "lstm",
                "LSTM language model: input, forget and output gates with a "
                "cell state, four weight blocks per layer (the default)",
            ),
        },
        default_model="lstm",
        # the sizes are picked per corpus and budget (charrnn.sizing); weight averaging:
        # 2.1013 -> 2.0879 bits/char at 2,750 steps of 640 units (docs/numbers.md)
        defaults={"model": {}, "train": {"ema_decay": 0.998}},
        model_fields=("tie_weights",),
        train_fields=("seq_len", "batching", "reset_every"),
        network="charrnn.models.rnn:build",
        counts="charrnn.models.counts:LanguageModelSize",
        task="charrnn.kinds.lm:LMTask",
        writer="charrnn.data:tokenize_corpus",
        reader="charrnn.data:load_text_dataset",
        describer="charrnn.data:describe",
        data_report="charrnn.reports:text_data",
        scorer="charrnn.metrics:score_lm",
        report="charrnn.reports:language_model",
    ),
    "seq2seq": Kind(
        name="seq2seq",
        models="seq2seq models",
        one="a seq2seq model",
        data="pairs",
        reads="parallel text",
        flag="--pairs",
        entries={
            "seq2seq-rnn": (
                "rnn",
                "encoder-decoder of Elman RNNs with attention "
                "(--attention dot|general|additive|none)",
            ),
            "seq2seq-gru": (
                "gru",
                "encoder-decoder of GRUs with attention (the default for parallel data)",
            ),
            "seq2seq-lstm": ("lstm", "encoder-decoder of LSTMs with attention"),
        },
        default_model="seq2seq-gru",
        # tuned on builtin:dates in 2 CPU minutes; over word pieces, label smoothing too
        # (charrnn.sizing.seq2seq_label_smoothing)
        defaults={
            "model": {"hidden_size": 256, "dropout": 0.1, "scaled_attention": True},
            "train": {"lr": 3e-3, "batch_size": 64},
        },
        model_fields=(
            "attention",
            "bidirectional",
            "input_feeding",
            "scaled_attention",
            "tie_weights",
        ),
        train_fields=("scheduled_sampling", "label_smoothing"),
        network="charrnn.models.seq2seq:build",
        counts="charrnn.models.counts:Seq2SeqSize",
        task="charrnn.kinds.seq2seq:PairTask",
        writer="charrnn.pairs:tokenize_pairs",
        reader="charrnn.pairs:load_pair_dataset",
        data_options=("shared_vocab", "max_chars", "shuffle_seed"),
        describer="charrnn.pairs:describe_pairs",
        data_report="charrnn.reports:parallel_data",
        scorer="charrnn.metrics:score_seq2seq",
        report="charrnn.reports:translations",
        eval_options=(
            "src",
            "ref",
            "beam_size",
            "length_penalty",
            "coverage_penalty",
            "no_repeat_ngram",
            "max_len_ratio",
        ),
    ),
    "classify": Kind(
        name="classify",
        models="classifiers",
        one="a classifier",
        data="labels",
        reads="labelled text",
        flag="--labels",
        entries={
            "classify-rnn": (
                "rnn",
                "text classifier: Elman RNN (bidirectional by default), states pooled "
                "(--pooling last|mean|max|attention) into a label",
            ),
            "classify-gru": (
                "gru",
                "text classifier: GRU (bidirectional by default), pooled states -> label "
                "(the default for labelled data)",
            ),
            "classify-lstm": (
                "lstm",
                "text classifier: LSTM (bidirectional by default), pooled states -> label",
            ),
        },
        default_model="classify-gru",
        # chosen on builtin:plays in 2 CPU minutes (docs/numbers.md): max pooling, lr 1e-2
        defaults={
            "model": {"hidden_size": 256, "dropout": 0.3, "bidirectional": True, "pooling": "max"},
            # best.pt by validation macro-F1, not loss: a classifier's loss rises as it grows
            # sure of itself while its accuracy still climbs (docs/numbers.md)
            "train": {
                "lr": 1e-2,
                "batch_size": 32,
                "seq_len": 512,
                "eval_every": 100,
                "best_on": "macro_f1",
            },
        },
        # a classifier's output is labels: nothing to tie
        model_fields=("bidirectional", "pooling"),
        train_fields=("seq_len", "class_weights", "best_on", "init_from"),
        network="charrnn.models.classifier:build",
        counts="charrnn.models.counts:ClassifierSize",
        task="charrnn.kinds.classify:ClassifyTask",
        writer="charrnn.labels:tokenize_labels",
        reader="charrnn.labels:load_label_dataset",
        describer="charrnn.labels:describe_labels",
        data_report="charrnn.reports:labelled_data",
        scorer="charrnn.metrics:score_classifier",
        report="charrnn.reports:classifier",
        data_options=("label_column", "labels", "seed"),
        eval_options=("label_column",),
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
