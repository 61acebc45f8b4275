"""The model registry: every trainable model, by name, gathered from the kinds' registry
(charrnn.kinds). The CLI's choices come from here and the tests walk every entry end to end,
so a new entry is tested automatically."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from charrnn import kinds
from charrnn.config import ModelConfig
from charrnn.errors import UsageError

if TYPE_CHECKING:  # the networks import torch: only when a model is built
    from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry."""

    name: str
    kind: str  # lm | seq2seq | classify (charrnn.kinds)
    cell: str
    description: str


MODELS: dict[str, ModelSpec] = {
    name: ModelSpec(name, kind.name, cell, description)
    for kind in kinds.KINDS.values()
    for name, (cell, description) in kind.entries.items()
}


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
    kind = kinds.get(entry.kind)
    config = ModelConfig(**{**config.__dict__, "cell": entry.cell})
    config.check()
    split = "bidirectional" in kind.model_fields and config.bidirectional
    if split and config.hidden_size % 2:
        raise UsageError(
            "--hidden-size",
            f"{config.hidden_size} is odd, but a bidirectional "
            "encoder splits it between two directions",
            "use an even size",
        )
    return kind.build(config, vocab_size, source_vocab_size, num_classes)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (a tied weight counts once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def expected_parameters(
    name: str,
    config: ModelConfig,
    vocab_size: int,
    source_vocab_size: int | None = None,
    num_classes: int | None = None,
) -> int:
    """The parameter count of `build(name, config, vocab_size, ...)`, from the formula."""
    entry = spec(name)
    kind = kinds.get(entry.kind)
    return kind.parameters(entry.cell, config, vocab_size, source_vocab_size, num_classes)


def growth(name: str) -> str:
    """How the parameter count grows with the sizes (V vocabulary, E embedding, H hidden,
    L layers)."""
    entry = spec(name)
    return kinds.get(entry.kind).growth(entry.cell)
