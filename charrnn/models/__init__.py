"""The model registry: every trainable model, by name. The CLI's choices come from here and
the tests walk every entry end to end, so a new entry is tested automatically."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from charrnn import kinds
from charrnn.config import ModelConfig
from charrnn.errors import UsageError

if TYPE_CHECKING:  # the networks import torch: only when a model is built
    from torch import nn

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry."""

    name: str
    kind: str  # lm | seq2seq | classify (charrnn.kinds)
    cell: str
    description: str


def _entry(name: str, kind: str, cell: str, description: str) -> tuple[str, ModelSpec]:
    return name, ModelSpec(name, kind, cell, description)


MODELS: dict[str, ModelSpec] = dict(
    [
        _entry(
            "rnn",
            "lm",
            "rnn",
            "Elman RNN language model (tanh; relu with --nonlinearity relu): "
            "the simplest, fastest, and quickest to forget",
        ),
        _entry(
            "gru",
            "lm",
            "gru",
            "GRU language model: update and reset gates, three weight blocks per layer",
        ),
        _entry(
            "lstm",
            "lm",
            "lstm",
            "LSTM language model: input, forget and output gates with a "
            "cell state, four weight blocks per layer (the default)",
        ),
        _entry(
            "seq2seq-rnn",
            "seq2seq",
            "rnn",
            "encoder-decoder of Elman RNNs with attention (--attention dot|general|additive|none)",
        ),
        _entry(
            "seq2seq-gru",
            "seq2seq",
            "gru",
            "encoder-decoder of GRUs with attention (the default for parallel data)",
        ),
        _entry("seq2seq-lstm", "seq2seq", "lstm", "encoder-decoder of LSTMs with attention"),
        _entry(
            "classify-rnn",
            "classify",
            "rnn",
            "text classifier: Elman RNN (bidirectional by default), states pooled "
            "(--pooling last|mean|max|attention) into a label",
        ),
        _entry(
            "classify-gru",
            "classify",
            "gru",
            "text classifier: GRU (bidirectional by default), pooled states -> label "
            "(the default for labelled data)",
        ),
        _entry(
            "classify-lstm",
            "classify",
            "lstm",
            "text classifier: LSTM (bidirectional by default), pooled states -> label",
        ),
    ]
)


def spec(name: str) -> ModelSpec:
    """The registry entry `name`, or a usage error listing the known ones."""
    if name not in MODELS:
        raise UsageError("--model", f"unknown model '{name}'", f"use one of: {', '.join(MODELS)}")
    return MODELS[name]


def build(
    name: str,
    config: ModelConfig,
    vocab_size: int,
    source_vocab_size: int | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """Instantiate registry entry `name` (its cell overrides `config.cell`). A seq2seq model
    needs both vocabulary sizes; `vocab_size` is the output (target) one. A classifier needs
    its number of labels."""
    entry = spec(name)
    config = ModelConfig(**{**config.__dict__, "cell": entry.cell})
    config.check()
    split = "bidirectional" in kinds.get(entry.kind).model_fields and config.bidirectional
    if split and config.hidden_size % 2:
        raise UsageError(
            "--hidden-size",
            f"{config.hidden_size} is odd, but a bidirectional "
            "encoder splits it between two directions",
            "use an even size",
        )
    return _BUILDERS[entry.kind](config, vocab_size, source_vocab_size, num_classes)


def _language_model(config: ModelConfig, vocab_size: int, *_) -> nn.Module:
    from charrnn.models.rnn import RNNLanguageModel

    return RNNLanguageModel(vocab_size, config)


def _seq2seq(config: ModelConfig, vocab_size: int, source_vocab_size, _) -> nn.Module:
    from charrnn.models.seq2seq import Seq2SeqModel

    return Seq2SeqModel(source_vocab_size or vocab_size, vocab_size, config)


def _classifier(config: ModelConfig, vocab_size: int, _, num_classes) -> nn.Module:
    from charrnn.models.classifier import Classifier

    return Classifier(vocab_size, num_classes or 2, config)


_BUILDERS = {"lm": _language_model, "seq2seq": _seq2seq, "classify": _classifier}


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (a tied weight counts once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def rnn_parameters(
    cell: str, input_size: int, hidden_size: int, num_layers: int, directions: int = 1
) -> int:
    """Parameters of a torch RNN stack: g * H * (in + H) weights and 2 * g * H biases per layer
    and direction, g = 1 (rnn), 3 (gru), 4 (lstm)."""
    g, h = GATES[cell], hidden_size
    total = 0
    for layer in range(num_layers):
        inp = input_size if layer == 0 else h * directions
        total += directions * (g * h * (inp + h) + 2 * g * h)
    return total


def expected_parameters(
    name: str,
    config: ModelConfig,
    vocab_size: int,
    source_vocab_size: int | None = None,
    num_classes: int | None = None,
) -> int:
    """The parameter count of `build(name, config, vocab_size, ...)`, from the formula."""
    entry = spec(name)
    v, e, h, n = vocab_size, config.embed_size, config.hidden_size, config.num_layers
    head = v if config.tie_weights else h * v + v
    if entry.kind == "lm":
        return v * e + rnn_parameters(entry.cell, e, h, n) + head
    dirs = 2 if config.bidirectional else 1
    if entry.kind == "classify":
        c = num_classes or 2
        pool = h * h + 2 * h if config.pooling == "attention" else 0
        return v * e + rnn_parameters(entry.cell, e, h // dirs, n, dirs) + pool + h * c + c
    encoder = rnn_parameters(entry.cell, e, h // dirs, n, dirs)
    bridge = (2 if entry.cell == "lstm" else 1) * (h * h + h)
    attention = {"dot": 0, "general": h * h, "additive": 2 * h * h + 2 * h, "none": 0}
    combine = 2 * h * h if config.attention != "none" else 0
    feed = h if config.input_feeding and config.attention != "none" else 0
    decoder = rnn_parameters(entry.cell, e + feed, h, n)
    embeddings = ((source_vocab_size or v) + v) * e
    return embeddings + encoder + bridge + decoder + attention[config.attention] + combine + head


def growth(name: str) -> str:
    """How the parameter count grows with the sizes (V vocabulary, E embedding, H hidden,
    L layers)."""
    entry = spec(name)
    g = GATES[entry.cell]
    if entry.kind == "seq2seq":
        return (
            f"(V_src + V_tgt)E + encoder + decoder + attention + V_tgt(H+1) ~ {2 * g}LH^2 + "
            "3H^2 for large H (encoder: H/2 per direction when bidirectional)"
        )
    if entry.kind == "classify":
        return (
            f"V*E + RNN stack + C(H+1) ~ {g}LH^2 for large H, bidirectional "
            "(H/2 per direction); attention pooling adds H^2"
        )
    return f"V*E + {g}H(E+H+2) + (L-1)*{g}H(2H+2) + V(H+1)  ~ {2 * g}LH^2 for large H"
