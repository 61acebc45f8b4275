"""Device selection: auto picks CUDA, then MPS, then the CPU."""

from __future__ import annotations

import contextlib

import torch

from charrnn.cores import CoreWatch, threads_for
from charrnn.errors import UsageError

AUTO_WAIT = 0.1  # seconds of watching the cores before choosing a thread count
# torch's own choice (one thread per physical core, or OMP_NUM_THREADS): the most we use
TORCH_THREADS = torch.get_num_threads()


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
    """The device `name` resolves to, configured for decoding or scoring: `threads` CPU
    threads when given, else torch's own default, so that the same command gives the same
    numbers however busy the machine is (the thread count can move the last bits)."""
    device = resolve(name)
    configure(device, threads or TORCH_THREADS)
    return device


def configure(device: torch.device, threads: int | None, watch: CoreWatch | None = None) -> int:
    """Set the CPU threads (`threads` when given, else as many as there are free cores, by a
    short look at what other programs use; see charrnn.cores) and fast-but-exact math
    settings. Returns the number of threads."""
    if threads is None:
        watch = watch or CoreWatch()
        threads = auto_threads(watch, wait=AUTO_WAIT)
    torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return threads


def auto_threads(watch: CoreWatch, wait: float = 0.0) -> int:
    """The default thread count now: one per free core, at most torch's own default."""
    cores = min(watch.cores, TORCH_THREADS)
    return threads_for(cores, min(watch.others(wait=wait), cores))


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware: AVX512-BF16 or AMX on x86, BF16 on
    Arm (Linux's /proc/cpuinfo flags). Elsewhere (or unreadable) bf16 would be emulated, and
    slower than fp32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags = set(value.split())
            return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """The arithmetic a command runs in: `fp32`, `bf16` or `fp16` (autocast: the weights stay
    fp32). `auto` is bf16 where the device runs it fast (a CUDA GPU with bf16, a CPU with
    AVX512-BF16 or AMX), else fp32. A precision the device cannot run fast is a usage error."""
    name = name.strip().lower()
    if name not in PRECISIONS:
        raise UsageError(
            "--precision", f"unknown precision '{name}'", f"use one of: {', '.join(PRECISIONS)}"
        )
    if device.type == "cuda":
        fast = torch.cuda.is_bf16_supported()
        where = f"this GPU ({torch.cuda.get_device_name(device)})"
    elif device.type == "cpu":
        fast = cpu_bf16()
        where = "this CPU (it has neither AVX512-BF16 nor AMX)"
    else:
        fast, where = False, f"{device.type} (charrnn runs it in fp32)"
    if name == "auto":
        return "bf16" if fast else "fp32"
    if name == "bf16" and not fast:
        raise UsageError(
            "--precision", f"bf16 is not fast on {where}", "use --precision fp32 (or auto)"
        )
    if name == "fp16" and device.type != "cuda":
        raise UsageError(
            "--precision", f"fp16 runs on CUDA only (this is {device.type})", "use bf16 or fp32"
        )
    return name


def autocast(device: torch.device, precision: str):
    """Mixed precision for `precision` (see `resolve_precision`); fp32 is a no-op."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def needs_scaler(precision: str) -> bool:
    """fp16 autocast needs loss scaling; bf16 (fp32's range) does not."""
    return precision == "fp16"
