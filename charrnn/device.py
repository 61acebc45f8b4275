"""Device selection: auto picks CUDA, then MPS, then the CPU."""

from __future__ import annotations

import contextlib

import torch

from charrnn.errors import UsageError


def resolve(name: str = "auto") -> torch.device:
    """`auto`, `cpu`, `cuda`, `cuda:N` or `mps`; an unavailable device is a usage error."""
    name = name.strip().lower()
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not has_mps:
            raise UsageError("--device", "mps is not available on this machine", "use --device cpu")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(
                "--device",
                f"{name} is not available (no CUDA GPU or a CPU-only torch build)",
                "use --device cpu, or install a CUDA build of torch",
            )
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UsageError(
                "--device",
                f"{name} does not exist ({torch.cuda.device_count()} GPU(s))",
                "use cuda:0",
            )
        return torch.device(name)
    raise UsageError("--device", f"unknown device '{name}'", "use auto, cpu, cuda, cuda:N or mps")


def prepare(name: str, threads: int | None = None) -> torch.device:
    """The device `name` resolves to, configured (CPU threads when given)."""
    device = resolve(name)
    configure(device, threads)
    return device


def configure(device: torch.device, threads: int | None) -> None:
    """Set CPU threads (when given) and fast-but-exact math settings."""
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def autocast(device: torch.device, enabled: bool):
    """Mixed precision on CUDA (bf16 where supported, else fp16); a no-op elsewhere."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def needs_scaler(device: torch.device, enabled: bool) -> bool:
    """fp16 autocast needs loss scaling; bf16 does not."""
    return enabled and device.type == "cuda" and not torch.cuda.is_bf16_supported()
