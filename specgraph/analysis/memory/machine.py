"""What the CPU really runs: the instruction set oneDNN's kernels dispatch to.

The kernel scratch models (kernels/) depend on it: oneDNN lays activations out in
blocks of 16 channels on AVX-512 (``nChw16c``) and of 8 on AVX2 (``nChw8c``).  The ISA is read
the way oneDNN chooses it, without importing torch: the CPU's flags in /proc/cpuinfo
(``avx512f``, ``avx2``) — or, where there is none, ``torch.backends.cpu.get_cpu_capability()``
when torch is imported already — capped by ``ONEDNN_MAX_CPU_ISA``.  (``ATEN_CPU_CAPABILITY``
caps ATen's own kernels, not oneDNN's, so it does not change the block.)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import lru_cache

# Ordered from the least to the most capable: a cap never raises what the CPU has.
ISAS = ("default", "avx2", "avx512")


@dataclass(frozen=True)
class Machine:
    onednn_isa: str  # one of ISAS: what oneDNN's kernels (convolution, the lstm) use

    @property
    def channel_block(self) -> int:
        """oneDNN's channel block for float32 activations: a zmm register holds 16 floats, a
        ymm 8 (the blocked formats nChw16c / nChw8c; without AVX2, oneDNN's SSE4.1 kernels
        also use 8)."""
        return 16 if self.onednn_isa == "avx512" else 8


@lru_cache(maxsize=None)
def _from_flags() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "default"
    except OSError:
        pass
    return None


def _from_torch() -> str | None:
    torch = sys.modules.get("torch")  # never imported here: checking a spec stays torch-free
    try:
        return _normalize(torch.backends.cpu.get_cpu_capability()) if torch is not None else None
    except AttributeError:  # pragma: no cover - a torch without backends.cpu
        return None


def _normalize(name: str | None) -> str | None:
    """``AVX512``, ``AVX512_CORE``, ``avx512_core_amx``, ``AVX2``, ``AVX2_VNNI``, ``DEFAULT`` -> an ISA."""
    if not name:
        return None
    name = name.lower()
    if name.startswith(("avx512", "avx10")):
        return "avx512"
    if name.startswith("avx2"):
        return "avx2"
    if name in ("default", "sse41", "sse4_1", "avx", "zvector", "vsx"):
        return "default"
    return None


def _capped(isa: str, cap: str | None) -> str:
    return isa if cap is None else ISAS[min(ISAS.index(isa), ISAS.index(cap))]


def detect() -> Machine:
    """The machine this process runs on (see the module docstring)."""
    # torch's report is a fallback only: it honours ATEN_CPU_CAPABILITY, which oneDNN ignores
    hardware = _from_flags() or _from_torch() or "default"
    cap = _normalize(os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA"))
    return Machine(_capped(hardware, cap))


__all__ = ["Machine", "ISAS", "detect"]
