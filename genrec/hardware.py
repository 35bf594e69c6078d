"""What the machine computes natively, and the one rule every bf16 switch follows.

Emulated bf16 is slower than fp32, not faster: on an AVX2-only CPU (no AVX-512-bf16, no AMX) a
`[700, 64] @ [64, 12101]` matmul took 724 ms in bf16 against 106 ms in fp32 (one thread), and the main
job learned half as much in its budget. So every precision switch (item scores, mixed precision, text
embeddings) takes `auto`: bf16 only where the device computes it natively. Forcing bf16 elsewhere works,
with one warning that says what it costs.
"""
from __future__ import annotations

import functools
import platform
import warnings
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
EMULATED_COST = ("bf16 is emulated on this {where}: a bf16 matmul runs about 7x slower than fp32 on an AVX2-only CPU "
                 "(724 ms against 106 ms for [700, 64] @ [64, 12101], one thread); {what}=auto picks fp32 here")


def _device_type(device: str | torch.device) -> str:
    return torch.device(device).type


@functools.lru_cache(maxsize=None)
def _native_bf16(device_type: str) -> bool:
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    # oneDNN says whether it has bf16 kernels (AVX-512-bf16 or AMX); ATen's capability caps what it may use
    # (`ATEN_CPU_CAPABILITY=avx2` or a CPU without AVX-512 means the bf16 paths are emulated)
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and torch.backends.cpu.get_cpu_capability() != "AVX2"


def native_bf16(device: str | torch.device) -> bool:
    """True where bf16 matmuls run on native units (CUDA with bf16; AVX-512-bf16 or AMX on a CPU)."""
    return _native_bf16(_device_type(device))


_warned: set[tuple[str, str]] = set()


def use_bf16(setting: str, device: str | torch.device, what: str) -> bool:
    """Resolve one precision switch (`auto`, `fp32` or `bf16`) for `device`. `what` names the switch in the
    once-per-process warning given when bf16 is forced where it is emulated."""
    if setting not in PRECISIONS:
        raise ValueError(f"{what} must be one of {', '.join(PRECISIONS)}, got {setting!r}")
    native = native_bf16(device)
    if setting == "auto":
        return native
    if setting == "bf16" and not native and (what, _device_type(device)) not in _warned:
        _warned.add((what, _device_type(device)))
        warnings.warn(f"{what}=bf16: " + EMULATED_COST.format(where=_device_type(device), what=what), stacklevel=2)
    return setting == "bf16"


@functools.lru_cache(maxsize=None)
def cpu_name() -> str:
    """The processor's model name (/proc/cpuinfo on Linux), for results files and logs."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(threads: bool = True) -> str:
    """One line naming the device, whether it has native bf16, the thread count and torch's version."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    bf16 = "native bf16" if native_bf16("cpu") else "no native bf16"
    n = torch.get_num_threads()
    count = f", {n} thread{'s' if n > 1 else ''}" if threads else ""
    return (f"CPU {cpu_name()}, {platform.machine()}, {torch.backends.cpu.get_cpu_capability()} kernels, {bf16}{count} "
            f"(torch {torch.__version__})")
