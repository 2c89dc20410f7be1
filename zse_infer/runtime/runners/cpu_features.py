"""What this CPU offers to ONNX Runtime's int8 kernels, read from ``/proc/cpuinfo`` (no new dependency).

ONNX Runtime's x86-64 kernels for uint8 x int8 (U8S8) matrix products differ
by CPU: with VNNI (``avx512_vnni``, ``avx_vnni``) or AMX they accumulate in
32 bits, exactly; with plain AVX2 / AVX-512 they use ``vpmaddubsw``, which
adds two products into a 16-bit integer and saturates. So an int8 graph's
numbers can depend on the CPU, and the manifest records the CPU each int8
graph was validated on. Elsewhere than Linux the features are "unknown".
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

#: the flags (Linux /proc/cpuinfo names) that choose ONNX Runtime's int8 kernels on x86-64
INT8_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
UNKNOWN = "unknown"
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
CPUINFO = Path("/proc/cpuinfo")


def cpu_features(cpuinfo: Path = CPUINFO) -> dict[str, Any]:
    """``{"vendor", "model", "machine", "flags", "vnni", "u8s8_exact", "source"}`` of this CPU.

    ``flags`` lists which of :data:`INT8_FLAGS` are present; ``vnni`` whether one
    of :data:`VNNI_FLAGS` is; ``u8s8_exact`` whether ONNX Runtime's U8S8 products
    cannot saturate here (VNNI/AMX, or not x86). Both are "unknown" where
    ``/proc/cpuinfo`` cannot be read.
    """
    machine = platform.machine() or UNKNOWN
    info = {"vendor": UNKNOWN, "model": platform.processor() or UNKNOWN, "machine": machine}
    fields = _first_cpu(cpuinfo)
    if fields is None:
        return {**info, "flags": UNKNOWN, "vnni": UNKNOWN, "u8s8_exact": UNKNOWN, "source": f"{cpuinfo} not readable ({platform.system()})"}
    present = set(fields.get("flags", "").split())
    flags = [f for f in INT8_FLAGS if f in present]
    vnni = any(f in flags for f in VNNI_FLAGS)
    return {
        **info,
        "vendor": fields.get("vendor_id", UNKNOWN),
        "model": fields.get("model name", info["model"]),
        "flags": flags,
        "vnni": vnni,
        "u8s8_exact": vnni or machine.lower() not in X86_MACHINES,  # ARM's dot products do not saturate
        "source": str(cpuinfo),
    }


def describe(features: dict[str, Any]) -> str:
    """One line for logs: ``AMD EPYC [avx2, avx512f, avx512_vnni]``."""
    flags = features.get("flags", UNKNOWN)
    listed = ", ".join(flags) if isinstance(flags, list) else str(flags)
    return f"{features.get('model', UNKNOWN)} [{listed or 'no int8 SIMD flags'}]"


def _first_cpu(cpuinfo: Path) -> dict[str, str] | None:
    """The ``key: value`` fields of the first processor block, or None where the file cannot be read."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # every processor block repeats the first one's model and flags
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields or None
