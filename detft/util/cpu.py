"""What the CPU offers for INT8 arithmetic, which decides how an INT8 ONNX graph must be quantized to be right on it.

x86 CPUs with VNNI (AVX-512 VNNI, AVX-VNNI, AMX) multiply uint8 activations by int8 weights into 32-bit sums. Without
it (AVX2 or AVX-512 alone) ONNX Runtime uses an instruction whose pair sums saturate at 16 bits, so int8 weights lose
accuracy there; uint8 weights take another path that does not saturate."""

from __future__ import annotations

from pathlib import Path

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether this CPU has int8 dot products without saturation (VNNI); None where it cannot be read (not Linux)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    return None if flags is None else bool(VNNI_FLAGS & set(flags))
