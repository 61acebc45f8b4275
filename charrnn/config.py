"""Frozen dataclasses holding every default once; CLI flags are their kebab-case twins."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from charrnn import corpus, kinds, tokenizer
from charrnn.errors import UsageError


def flag(field: str) -> str:
    """The command-line twin of a config field: `hidden_size` -> `--hidden-size`."""
    return "--" + field.replace("_", "-")


def _require(ok: bool, field: str, what: str, fix: str) -> None:
    if not ok:
        raise UsageError(flag(field), what, fix)


def to_dict(config) -> dict:
    """A plain dict (for JSON and checkpoints)."""
    return asdict(config)


def from_dict(cls, data: dict):
    """Build `cls` from a dict, ignoring keys it does not know."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class TokenizeConfig:
    """How `charrnn tokenize` turns text into ids."""

    # auto | char | bpe. auto: char for a language model's text; for parallel text, one BPE
    # vocabulary shared by both sides when they are words of a real language (see
    # charrnn.pairs.pick_vocabulary), else char
    vocab: str = "auto"
    vocab_size: int | None = None  # bpe: default 4096; char: optional upper bound
    lowercase: bool = False
    normalize: str = "none"  # none | nfc | nfd | nfkc | nfkd
    val_frac: float = 0.1
    test_frac: float = 0.0
    glob: str = "*"
    encoding: str = "utf-8"
    errors: str = "strict"  # strict | replace | ignore

    def check(self) -> None:
        """Raise `UsageError` for values out of range."""
        _require(
            self.vocab in (*tokenizer.KINDS, "auto"),
            "vocab",
            f"unknown vocabulary '{self.vocab}'",
            "use auto, char or bpe",
        )
        tokenizer.check_normalize(self.normalize)
        corpus.check_encoding(self.encoding, self.errors)
        for name in ("val_frac", "test_frac"):
            value = getattr(self, name)
            _require(
                0.0 <= value < 1.0,
                name,
                f"{value} is out of range",
                "use a fraction in [0, 1), e.g. 0.1",
            )
        _require(
            self.val_frac + self.test_frac < 1.0,
            "val_frac",
            f"val + test fractions ({self.val_frac + self.test_frac:g}) leave no training text",
            "keep their sum below 1",
        )
        if self.vocab_size is not None:  # auto picks bpe only where no size is given
            tokenizer.check_vocab_size(self.vocab.replace("auto", "char"), self.vocab_size)


CELLS = ("rnn", "gru", "lstm")
POOLINGS = ("last", "mean", "max", "attention")  # a classifier's pooling of its states


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the recurrent stack of a language model (and of a seq2seq encoder and
    decoder). Field names follow PyTorch."""

    cell: str = "lstm"  # rnn | gru | lstm
    embed_size: int = 64
    hidden_size: int = 768  # tuned: best bits/char in 10 CPU minutes on tinyshakespeare
    num_layers: int = 1
    dropout: float = 0.3  # between stacked layers and on the last layer's output
    embed_dropout: float = 0.0  # on the embeddings
    # DropConnect on the hidden-to-hidden weights (AWD-LSTM): one mask per batch, so every
    # step of a sequence sees the same dropped recurrent weights
    weight_dropout: float = 0.0
    tie_weights: bool = False  # share input embedding and output projection (embed == hidden)
    residual: bool = False  # add each stacked layer's input to its output (layers 2..n)
    nonlinearity: str = "tanh"  # rnn only: tanh | relu
    # seq2seq only
    attention: str = "general"  # dot | general | additive | none
    bidirectional: bool = True  # encoder
    input_feeding: bool = True  # feed the previous attentional vector to the decoder
    # dot/general scores divided by sqrt(hidden); off here so that checkpoints saved before
    # it existed load unchanged, on for new seq2seq runs (KIND_DEFAULTS)
    scaled_attention: bool = False
    # classify only: how the states of a text become one vector (charrnn.models.classify)
    pooling: str = "last"  # last | mean | max | attention

    def check(self) -> None:
        """Raise `UsageError` for values out of range or combinations that cannot work."""
        _require(self.cell in CELLS, "cell", f"unknown cell '{self.cell}'", "use rnn, gru or lstm")
        for name, top in (("embed_size", 65536), ("hidden_size", 65536), ("num_layers", 64)):
            value = getattr(self, name)
            _require(
                isinstance(value, int) and 1 <= value <= top,
                name,
                f"{value} is out of range",
                f"use a whole number from 1 to {top}",
            )
        for name in ("dropout", "embed_dropout", "weight_dropout"):
            value = getattr(self, name)
            _require(0.0 <= value < 1.0, name, f"{value} is out of range", "use a value in [0, 1)")
        _require(
            self.nonlinearity in ("tanh", "relu"),
            "nonlinearity",
            f"unknown nonlinearity '{self.nonlinearity}'",
            "use tanh or relu",
        )
        _require(
            self.attention in ("dot", "general", "additive", "none"),
            "attention",
            f"unknown attention '{self.attention}'",
            "use dot, general, additive or none",
        )
        _require(
            self.pooling in POOLINGS,
            "pooling",
            f"unknown pooling '{self.pooling}'",
            f"use {', '.join(POOLINGS[:-1])} or {POOLINGS[-1]}",
        )
        _require(
            not self.tie_weights or self.embed_size == self.hidden_size,
            "tie_weights",
            f"needs --embed-size equal to --hidden-size ({self.embed_size} vs {self.hidden_size})",
            f"add --embed-size {self.hidden_size}",
        )


MAX_AUTO_DROPOUT = 0.3  # the most dropout charrnn.sizing picks for a language model

OPTIMIZERS = ("adamw", "adam", "rmsprop", "sgd")
SCHEDULES = ("cosine", "constant")
BATCHING = ("stream", "random")
BEST_ON = ("loss", "accuracy", "macro_f1")  # what an evaluation is judged by
DEFAULT_TIME_BUDGET = 600.0  # seconds, when no --max-steps, --epochs or --time-budget is given


def parse_duration(text: str) -> float:
    """Seconds in '90', '90s', '10m', '1h30m', '1.5h'."""
    import re

    raw = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        return float(raw)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", raw)
    if not parts or "".join(n + u for n, u in parts) != raw.replace(" ", ""):
        raise UsageError(
            "--time-budget",
            f"cannot read '{text}' as a duration",
            "write it like 90s, 10m or 1h30m",
        )
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


@dataclass(frozen=True)
class TrainConfig:
    """How `charrnn train` trains (everything but the architecture)."""

    batch_size: int = 32
    seq_len: int = 128
    batching: str = "stream"  # stream (truncated BPTT, carried state) | random (windows)
    reset_every: int = (
        32  # stream: a row restarts from <bos> once every this many chunks on average; 0: never
    )
    # language models: 768 units, dropout 0.3, 1,000 steps on tinyshakespeare scored 2.218 /
    # 2.178 / 2.139 / 2.128 bits/char at 4e-3 / 6e-3 / 8e-3 / 1.2e-2 (docs/numbers.md)
    lr: float = 8e-3
    min_lr_frac: float = 0.1  # the cosine schedule ends at lr * min_lr_frac
    warmup_steps: int = 50
    schedule: str = "cosine"  # cosine | constant
    optimizer: str = "adamw"  # adamw | adam | rmsprop | sgd
    weight_decay: float = 0.01
    max_steps: int | None = None
    epochs: float | None = None
    time_budget: float | None = None  # seconds; 10 minutes when no other limit is given
    clip_norm: float = 1.0  # clip the global gradient norm; 0 turns it off
    clip_value: float = 0.0  # clip each gradient element (char-rnn style); 0 turns it off
    # evaluate, save and decode with an exponential moving average of the weights (optim.
    # WeightAverage); 0 turns it off
    ema_decay: float = 0.0
    eval_every: int = 200
    patience: int = 10  # stop after this many evaluations without improvement; 0: never
    checkpoint_every: int = 0  # steps; 0: at every evaluation
    log_every: int = 10
    seed: int = 1337
    device: str = "auto"
    threads: int | None = None
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast; see charrnn.device)
    scheduled_sampling: float = 0.0  # seq2seq: feed own predictions, ramping up to this rate
    label_smoothing: float = 0.0  # seq2seq: this much of each target's probability spread out
    class_weights: str = "none"  # classify: none | balanced (each class weighs n / (C x count))
    # which validation score picks best.pt and counts patience: loss, or (classify) accuracy
    # or macro_f1, compared as 1 - score
    best_on: str = "loss"
    init_from: str | None = None  # classify: start the encoder from this language model's run

    def limits(self) -> TrainConfig:
        """This config with the default time budget applied when no limit was given."""
        if self.max_steps is None and self.epochs is None and self.time_budget is None:
            return TrainConfig(**{**self.__dict__, "time_budget": DEFAULT_TIME_BUDGET})
        return self

    def check(self) -> None:
        """Raise `UsageError` for values out of range."""
        self._check_batches_and_optimizer()
        self._check_limits_and_records()

    def _check_batches_and_optimizer(self) -> None:
        for name, top in (("batch_size", 1 << 16), ("seq_len", 1 << 20)):
            value = getattr(self, name)
            _require(
                1 <= value <= top,
                name,
                f"{value} is out of range",
                f"use a whole number from 1 to {top}",
            )
        _require(
            0 < self.lr <= 10,
            "lr",
            f"{self.lr} is out of range",
            "use a positive learning rate such as 3e-3",
        )
        _require(
            0 <= self.min_lr_frac <= 1,
            "min_lr_frac",
            f"{self.min_lr_frac} is out of range",
            "use a fraction in [0, 1]",
        )
        _require(self.warmup_steps >= 0, "warmup_steps", "must not be negative", "use 0 or more")
        _require(
            self.schedule in SCHEDULES,
            "schedule",
            f"unknown schedule '{self.schedule}'",
            f"use one of: {', '.join(SCHEDULES)}",
        )
        _require(
            self.optimizer in OPTIMIZERS,
            "optimizer",
            f"unknown optimizer '{self.optimizer}'",
            f"use one of: {', '.join(OPTIMIZERS)}",
        )
        _require(
            self.batching in BATCHING,
            "batching",
            f"unknown batching '{self.batching}'",
            "use stream or random",
        )
        _require(self.weight_decay >= 0, "weight_decay", "must not be negative", "use 0 or more")

    def _check_limits_and_records(self) -> None:
        _require(
            self.max_steps is None or self.max_steps >= 1,
            "max_steps",
            f"{self.max_steps} is out of range",
            "use 1 or more",
        )
        _require(
            self.epochs is None or self.epochs > 0,
            "epochs",
            f"{self.epochs} is out of range",
            "use a positive number",
        )
        _require(
            self.time_budget is None or self.time_budget > 0,
            "time_budget",
            "must be positive",
            "write it like 90s, 10m or 1h30m",
        )
        _require(self.clip_norm >= 0, "clip_norm", "must not be negative", "use 0 to turn it off")
        _require(self.clip_value >= 0, "clip_value", "must not be negative", "use 0 to turn it off")
        _require(
            0 <= self.ema_decay < 1,
            "ema_decay",
            f"{self.ema_decay} is out of range",
            "use a decay in [0, 1), e.g. 0.995; 0 turns averaging off",
        )
        for name in ("eval_every", "log_every"):
            _require(getattr(self, name) >= 1, name, "must be at least 1", "use 1 or more")
        _require(self.patience >= 0, "patience", "must not be negative", "use 0 to turn it off")
        _require(
            self.checkpoint_every >= 0,
            "checkpoint_every",
            "must not be negative",
            "use 0 to checkpoint at every evaluation",
        )
        _require(
            self.reset_every >= 0, "reset_every", "must not be negative", "use 0 to never restart"
        )
        _require(
            self.threads is None or self.threads >= 1,
            "threads",
            "must be at least 1",
            "use 1 or more",
        )
        _require(
            0 <= self.label_smoothing < 1,
            "label_smoothing",
            f"{self.label_smoothing} is out of range",
            "use a fraction in [0, 1), e.g. 0.1",
        )
        _require(
            0 <= self.scheduled_sampling <= 1,
            "scheduled_sampling",
            f"{self.scheduled_sampling} is out of range",
            "use a rate in [0, 1]",
        )
        _require(
            self.best_on in BEST_ON,
            "best_on",
            f"unknown score '{self.best_on}'",
            f"use one of: {', '.join(BEST_ON)}",
        )
        _require(
            self.class_weights in ("none", "balanced"),
            "class_weights",
            f"unknown weighting '{self.class_weights}'",
            "use none or balanced",
        )


# Defaults that differ by model kind (each kind's entry in charrnn.kinds says why); every
# other default is the dataclasses' own.
KIND_DEFAULTS: dict[str, dict[str, dict]] = {k.name: k.defaults for k in kinds.KINDS.values()}


def configs_for(kind: str, model_given: dict, train_given: dict) -> tuple[ModelConfig, TrainConfig]:
    """The model and training configs of a new run of `kind`: the flags given (None = not
    given) over the kind's defaults over the dataclasses' defaults."""
    defaults = KIND_DEFAULTS[kind]
    model = {**defaults["model"], **{k: v for k, v in model_given.items() if v is not None}}
    train = {**defaults["train"], **{k: v for k, v in train_given.items() if v is not None}}
    return ModelConfig(**model), TrainConfig(**train)


WORD_PIECES = 1000  # a vocabulary this large holds word pieces (BPE), not characters
WORD_PIECE_SMOOTHING = 0.3  # label smoothing of a seq2seq model over them (see sizing)


def model_fields(config: dict, kind: str) -> dict:
    """The fields of a model config that mean something for this kind of model."""
    return {
        k: v
        for k, v in config.items()
        if kind in kinds.with_field(k) and (k != "nonlinearity" or config.get("cell") == "rnn")
    }


# -- decoding ------------------------------------------------------------------------------------

MAX_FACTOR = 1e6  # the largest --temperature, and the range of --repetition-penalty
LENGTH_PENALTIES = ("none", "avg", "gnmt")
MAX_LEN_RATIO = 2.0  # a seq2seq output is at most this many times as long as its source


def _require_at(ok: bool, where: str, what: str, fix: str) -> None:
    if not ok:
        raise UsageError(where, what, fix)


@dataclass(frozen=True)
class SampleConfig:
    """How `charrnn sample` draws text."""

    length: int = 500  # new tokens at most
    temperature: float = 1.0  # 0: greedy
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1: off
    min_p: float = 0.0  # 0: off
    repetition_penalty: float = 1.0  # 1: off
    no_repeat_ngram: int = 0  # 0: off

    def check(self) -> None:
        """Raise `UsageError` for values out of range."""
        for flag, value in (
            ("--temperature", self.temperature),
            ("--top-p", self.top_p),
            ("--min-p", self.min_p),
            ("--repetition-penalty", self.repetition_penalty),
        ):
            _require_at(
                math.isfinite(value), flag, f"{value} is not a finite number", "give a number"
            )
        _require_at(
            self.length >= 1,
            "--length",
            f"{self.length} must be at least 1",
            "ask for 1 or more tokens",
        )
        _require_at(
            self.temperature >= 0,
            "--temperature",
            f"{self.temperature} is negative",
            "use 0 (greedy) or more",
        )
        _require_at(  # far beyond it, float32 overflows (and every token is as likely long before)
            self.temperature <= MAX_FACTOR,
            "--temperature",
            f"{self.temperature:g} is too large (at most {MAX_FACTOR:g})",
            "use a smaller value",
        )
        _require_at(self.top_k >= 0, "--top-k", f"{self.top_k} is negative", "use 0 (off) or more")
        _require_at(
            0 < self.top_p <= 1,
            "--top-p",
            f"{self.top_p} is outside (0, 1]",
            "use e.g. 0.9 (1 turns it off)",
        )
        _require_at(
            0 <= self.min_p < 1, "--min-p", f"{self.min_p} is outside [0, 1)", "use e.g. 0.05"
        )
        _require_at(
            1 / MAX_FACTOR <= self.repetition_penalty <= MAX_FACTOR,
            "--repetition-penalty",
            f"{self.repetition_penalty:g} is outside [{1 / MAX_FACTOR:g}, {MAX_FACTOR:g}]",
            "use 1 (off) or e.g. 1.2",
        )
        _require_at(
            self.no_repeat_ngram >= 0,
            "--no-repeat-ngram",
            f"{self.no_repeat_ngram} is negative",
            "use 0 (off) or e.g. 3",
        )


@dataclass(frozen=True)
class BeamConfig:
    """How `charrnn beam` searches."""

    beam_size: int = 5
    n_best: int = 1
    max_len: int = 200  # new tokens at most
    min_len: int = 0  # <eos> is banned before this many tokens
    length_penalty: str = "none"  # none | avg | gnmt
    alpha: float = 0.6  # gnmt: score / ((5 + len) / 6) ** alpha
    no_repeat_ngram: int = 0
    coverage_penalty: float = 0.0  # seq2seq: GNMT's beta; 0: off

    def check(self) -> None:
        """Raise `UsageError` for values out of range."""
        _require_at(
            math.isfinite(self.coverage_penalty) and self.coverage_penalty >= 0,
            "--coverage-penalty",
            f"{self.coverage_penalty} is not a number from 0 up",
            "use 0 (off) or e.g. 0.2",
        )
        _require_at(
            math.isfinite(self.alpha),
            "--alpha",
            f"{self.alpha} is not a finite number",
            "use e.g. 0.6",
        )
        _require_at(
            self.beam_size >= 1, "--beam-size", f"{self.beam_size} must be at least 1", "use e.g. 5"
        )
        _require_at(
            1 <= self.n_best <= self.beam_size,
            "--n-best",
            f"{self.n_best} must be between 1 and the beam size ({self.beam_size})",
            "lower --n-best or raise --beam-size",
        )
        _require_at(
            self.max_len >= 1, "--max-len", f"{self.max_len} must be at least 1", "use 1 or more"
        )
        _require_at(
            0 <= self.min_len <= self.max_len,
            "--min-len",
            f"{self.min_len} must be between 0 and --max-len",
            "lower --min-len",
        )
        _require_at(
            self.length_penalty in LENGTH_PENALTIES,
            "--length-penalty",
            f"unknown form '{self.length_penalty}'",
            f"use one of: {', '.join(LENGTH_PENALTIES)}",
        )
        _require_at(self.alpha >= 0, "--alpha", f"{self.alpha} is negative", "use e.g. 0.6")
        _require_at(
            self.no_repeat_ngram >= 0,
            "--no-repeat-ngram",
            f"{self.no_repeat_ngram} is negative",
            "use 0 (off) or e.g. 3",
        )


# -- looking inside models -------------------------------------------------------------------

SHOWN_K = (0, 1, 2, 5, 10, 20, 50, 100, 199)  # gradient flow's table columns (below --length)


@dataclass(frozen=True)
class FlowConfig:
    """How gradient flow is measured (charrnn.inspect.gradflow)."""

    windows: int = 8  # windows of text, averaged over
    length: int = 200  # tokens in a window: k runs over 0..length-1
    jacobian_points: int = 256  # steps (of all windows) whose Jacobian norms are averaged
    iterations: int = 100  # Lanczos steps at most, for each Jacobian's norm
    tolerance: float = 1e-7  # ... fewer once every estimate moves less than this (relative)
    seed: int = TrainConfig.seed  # a fresh model's weights; the Lanczos start vectors

    def check(self) -> None:
        """Raise `UsageError` for values that cannot work."""
        if self.windows < 1:
            raise UsageError("--windows", f"{self.windows} is below 1", "use e.g. 8")
        if self.length < 2:
            raise UsageError("--length", f"{self.length} is below 2", "use e.g. 200")


GATE_MOSTLY = 0.5  # inspect gates counts units saturated on one side more than this share of steps
GATE_RARELY = 0.1  # ... and units saturated (either side) less than this share of steps


@dataclass(frozen=True)
class GatesConfig:
    """How gate saturation is measured (charrnn.inspect.gates)."""

    length: int = 20_000  # tokens read at most, from the start of the text
    streams: int = 16  # contiguous pieces of them read side by side, each from a zero state
    left: float = 0.1  # a gate below this is left-saturated (Karpathy, Johnson, Fei-Fei 2015)
    right: float = 0.9  # ... above this, right-saturated
    seed: int = TrainConfig.seed  # a fresh model's weights

    def check(self) -> None:
        """Raise `UsageError` for values that cannot work."""
        if self.length < 1:
            raise UsageError("--length", f"{self.length} is below 1", "use e.g. 20000")
        if self.streams < 1:
            raise UsageError("--streams", f"{self.streams} is below 1", "use e.g. 16")
        if not 0 < self.left < self.right < 1:
            raise UsageError(
                "GatesConfig",
                f"thresholds left={self.left}, right={self.right} are not 0 < left < right < 1",
                "use e.g. 0.1 and 0.9",
            )


NEURON_STATES = ("auto", "cell", "hidden")  # inspect neurons --state


@dataclass(frozen=True)
class NeuronsConfig:
    """How neuron activations are read and ranked (charrnn.inspect.neurons)."""

    length: int = 2_000  # tokens shown (page, terminal, picture), from the start of the text
    find_length: int = 100_000  # tokens read at most to rank the units by the text's properties
    streams: int = 16  # contiguous pieces of them read side by side, each from a zero state
    top: int = 5  # units listed per property
    predictions: int = 5  # next tokens shown per position, most likely first
    # auto: an LSTM's cell state tanh(c) (Karpathy, Johnson, Fei-Fei 2015), else h;
    # cell: tanh(c) (LSTM only); hidden: h
    state: str = "auto"

    def check(self) -> None:
        """Raise `UsageError` for values that cannot work."""
        for name in ("length", "find_length", "streams", "top", "predictions"):
            value = getattr(self, name)
            default = getattr(NeuronsConfig, name)
            _require(value >= 1, name, f"{value} is below 1", f"use e.g. {default}")
        _require(
            self.state in NEURON_STATES,
            "state",
            f"unknown state '{self.state}'",
            f"use one of: {', '.join(NEURON_STATES)}",
        )


@dataclass(frozen=True)
class NoveltyConfig:
    """How memorization is measured (charrnn.inspect.novelty)."""

    ngrams: tuple[int, ...] = (8, 16, 32)  # n-gram lengths (characters) whose shares are reported
    passages: int = 5  # copied passages listed, longest first (at least the shortest n long)
    max_sample_chars: int = 1 << 21  # a longer sample is an error (2 M characters: ~20 s)
    shown_chars: int = 60  # a passage's text in the table, cut to this
    picture_rows: int = 36  # the picture's text panel: this many lines of the sample ...
    picture_columns: int = 100  # ... each at most this many characters
    index_suffix: str = ".novelty"  # the index beside data directory DATA: DATA.novelty

    def check(self) -> None:
        """Raise `UsageError` for values that cannot work."""
        _require(bool(self.ngrams), "ngram", "no n-gram length given", "use e.g. 8, 16 or 32")
        for n in self.ngrams:
            _require(n >= 1, "ngram", f"{n} is below 1", "use e.g. 8, 16 or 32")
        _require(self.passages >= 0, "passages", f"{self.passages} is negative", "use e.g. 5")
