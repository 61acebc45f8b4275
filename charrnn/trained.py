"""Loading trained models: a checkpoint (or a run directory) back into a model with its
tokenizers, ready to decode and score, and what a checkpoint holds (`charrnn info`). Starting
and continuing runs is `charrnn.runs`; decoding and scoring import this, not training."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from charrnn import checkpoint, datadir, models
from charrnn import device as devices
from charrnn.config import ModelConfig, model_fields
from charrnn.data import load_dataset
from charrnn.errors import CharrnnError
from charrnn.tokenizer import Tokenizer, from_json


def saved_data_path(saved: dict, run_dir: Path) -> str | None:
    """Where a checkpoint's training data lies. Data kept inside the run (text from stdin)
    is stored relative to the run, so a run directory can be moved or copied whole."""
    path = (saved.get("data") or {}).get("path")
    if path and not Path(path).is_absolute():
        return str(run_dir / path)
    return path


def build_model(
    name: str, config: ModelConfig, tokenizers: dict[str, Tokenizer], labels=None
) -> nn.Module:
    """Instantiate registry entry `name` for these tokenizers (one `text`, or `source` and
    `target`) and, for a classifier, these labels."""
    if labels is not None:
        return models.build(name, config, tokenizers["text"].vocab_size, num_classes=len(labels))
    if "text" in tokenizers:
        return models.build(name, config, tokenizers["text"].vocab_size)
    return models.build(
        name, config, tokenizers["target"].vocab_size, tokenizers["source"].vocab_size
    )


@dataclass
class Trained:
    """A trained model ready for decoding or evaluation."""

    path: Path
    kind: str
    model_name: str
    model: nn.Module
    tokenizer: Tokenizer  # the output side (a seq2seq model's target)
    checkpoint: dict
    device: torch.device
    source_tokenizer: Tokenizer | None = None  # seq2seq: the input side
    precision: str = "fp32"  # decoding and scoring arithmetic (see charrnn.device)
    labels: list[str] | None = None  # a classifier's labels, by class number

    @property
    def translates(self) -> bool:
        """Whether it writes an output for each source it reads (seq2seq), rather than
        continuing text (a language model) or labelling it (a classifier)."""
        return self.source_tokenizer is not None


def load_trained(
    path: str | Path, device: torch.device | str = "cpu", precision: str = "fp32"
) -> Trained:
    """Load a checkpoint (a .pt file, or a run directory: best.pt, else last.pt), to decode
    and score in `precision` (auto, fp32, bf16; see charrnn.device)."""
    path = Path(path)
    if path.is_dir():
        path = next((path / n for n in ("best.pt", "last.pt") if (path / n).is_file()), path)
    data = checkpoint.load(path)  # a directory without checkpoints gets its own message
    where = str(path)
    try:
        name = data["model"]["name"]
        known = {f.name for f in fields(ModelConfig)}
        config = ModelConfig(**{k: v for k, v in data["model"]["config"].items() if k in known})
        tokenizers = {
            key: from_json(text, f"{where}: {key} tokenizer")
            for key, text in data["tokenizers"].items()
        }
        labels = data["model"].get("labels")
        if labels is not None and not (
            isinstance(labels, list)
            and len(labels) >= 2
            and all(isinstance(x, str) for x in labels)
        ):
            raise ValueError("its labels are not a list of names")
        model = build_model(name, config, tokenizers, labels)
    except (KeyError, TypeError, AttributeError, ValueError, CharrnnError) as e:
        detail = " ".join((e.message() if isinstance(e, CharrnnError) else str(e)).split())
        raise CharrnnError(
            where,
            f"checkpoint does not describe a model charrnn can build ({detail[:100]})",
            "pass a file written by charrnn train",
        ) from None
    checkpoint.load_weights(model, data["weights"], where)
    device = torch.device(device) if isinstance(device, str) else device
    model.to(device).eval()
    output = tokenizers.get("text") or tokenizers["target"]
    return Trained(
        path,
        data["kind"],
        name,
        model,
        output,
        data,
        device,
        tokenizers.get("source"),
        devices.resolve_precision(precision, device),
        labels,
    )


def describe_checkpoint(path: str | Path) -> dict:
    """What a checkpoint (or a run directory's last.pt and best.pt) holds, for `charrnn info`."""
    path = Path(path)
    files = (
        [path / n for n in ("last.pt", "best.pt") if (path / n).is_file()]
        if path.is_dir()
        else [path]
    )
    data = checkpoint.load(files[0] if files else path)  # no checkpoint: load says why
    seen, params = set(), 0
    for tensor in data["weights"].values():
        if tensor.data_ptr() not in seen:  # tied weights count once
            seen.add(tensor.data_ptr())
            params += tensor.numel()
    state = data.get("train", {}).get("state", {})
    tokenizers = {
        name: from_json(text, f"{files[0]}: tokenizer").describe()
        for name, text in data["tokenizers"].items()
    }
    best = checkpoint.load(files[1]).get("metrics") if len(files) > 1 else None
    return {
        "path": str(path),
        "files": [str(f) for f in files],
        "kind": data["kind"],
        "format": data["format"],
        "version": data["version"],
        "charrnn_version": data.get("charrnn_version"),
        "created": data.get("created"),
        "command": data.get("command"),
        "model": {
            "name": data["model"]["name"],
            "config": model_fields(data["model"]["config"], data["kind"]),
            "params": params,
            **({"labels": data["model"]["labels"]} if "labels" in data["model"] else {}),
        },
        "tokenizers": tokenizers,
        "data": data.get("data"),
        "train": {
            k: state.get(k)
            for k in (
                "step",
                "epoch",
                "elapsed",
                "tokens",
                "best_val_loss",
                "skipped_steps",
                "rollbacks",
            )
        }
        | (  # how far through the data: whole epochs and the part of the current one
            {"epochs": round(state["epoch"] + state["index"] / state["epoch_steps"], 2)}
            if state.get("epoch_steps")
            else {}
        ),
        "metrics": data.get("metrics") or {},
        "best_metrics": best,
    }


def run_data(trained: Trained, fix: str):
    """The data directory the model was trained on, loaded, and its path; an error with
    `fix` when it is gone."""
    path = saved_data_path(trained.checkpoint, trained.path.parent)
    if not path or not datadir.is_dataset(path):
        raise CharrnnError(str(trained.path), f"the run's data directory ({path}) is gone", fix)
    return load_dataset(path), str(path)
