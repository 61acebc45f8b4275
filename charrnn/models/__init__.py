"""The model registry: every trainable model, by name. The CLI's choices come from here and
the tests walk every entry end to end, so a new entry is tested automatically."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from charrnn.config import ModelConfig
from charrnn.errors import UsageError
from charrnn.models.rnn import RNNLanguageModel

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry."""

    name: str
    kind: str  # lm | seq2seq
    cell: str
    description: str


MODELS: dict[str, ModelSpec] = {
    "rnn": ModelSpec(
        "rnn",
        "lm",
        "rnn",
        "Elman RNN language model (tanh; relu with "
        "--nonlinearity relu): the simplest, fastest, and quickest to forget",
    ),
    "gru": ModelSpec(
        "gru",
        "lm",
        "gru",
        "GRU language model: update and reset gates, three weight blocks per layer",
    ),
    "lstm": ModelSpec(
        "lstm",
        "lm",
        "lstm",
        "LSTM language model: input, forget and output "
        "gates with a cell state, four weight blocks per layer (the default)",
    ),
}


def spec(name: str) -> ModelSpec:
    """The registry entry `name`, or a usage error listing the known ones."""
    if name not in MODELS:
        raise UsageError("--model", f"unknown model '{name}'", f"use one of: {', '.join(MODELS)}")
    return MODELS[name]


def build(name: str, config: ModelConfig, vocab_size: int) -> nn.Module:
    """Instantiate registry entry `name` (its cell overrides `config.cell`)."""
    entry = spec(name)
    config = ModelConfig(**{**config.__dict__, "cell": entry.cell})
    config.check()
    return RNNLanguageModel(vocab_size, config)


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


def expected_parameters(name: str, config: ModelConfig, vocab_size: int) -> int:
    """The parameter count of `build(name, config, vocab_size)`, from the formula."""
    entry = spec(name)
    v, e, h = vocab_size, config.embed_size, config.hidden_size
    rnn = rnn_parameters(entry.cell, e, h, config.num_layers)
    head = v if config.tie_weights else h * v + v
    return v * e + rnn + head


def growth(name: str) -> str:
    """How the parameter count grows with the sizes, as a formula (V vocabulary, E embedding,
    H hidden, L layers)."""
    g = GATES[spec(name).cell]
    return f"V*E + {g}H(E+H+2) + (L-1)*{g}H(2H+2) + V(H+1)  ~ {2 * g}LH^2 for large H"
