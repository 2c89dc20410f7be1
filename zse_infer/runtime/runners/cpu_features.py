"""What this CPU offers to ONNX Runtime's int8 and OpenVINO's bf16 kernels, from ``/proc/cpuinfo`` ("unknown"
outside Linux; ``$ZSE_CPUINFO`` reads another machine's saved cpuinfo: docs/cpu.md)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

#: the flags (Linux /proc/cpuinfo names) that choose ONNX Runtime's int8 kernels on x86-64
INT8_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: the flags that give OpenVINO a native bf16 path (see :func:`bf16_unit`)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: every flag :func:`cpu_features` reports, in this order
SIMD_FLAGS = INT8_FLAGS + BF16_FLAGS
UNKNOWN = "unknown"
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
CPUINFO = Path("/proc/cpuinfo")
CPUINFO_ENV = "ZSE_CPUINFO"


def cpu_features(cpuinfo: Path | None = None) -> dict[str, Any]:
    """``{"vendor", "model", "machine", "flags", "vnni", "u8s8_exact", "bf16", "source"}`` of this CPU: ``flags`` of
    :data:`SIMD_FLAGS`; ``u8s8_exact``: ONNX Runtime's U8S8 products cannot saturate here (VNNI/AMX, or not x86)."""
    cpuinfo = Path(cpuinfo or os.environ.get(CPUINFO_ENV) or CPUINFO)
    machine = platform.machine() or UNKNOWN
    info: dict[str, Any] = {"vendor": UNKNOWN, "model": platform.processor() or UNKNOWN, "machine": machine}
    fields = _first_cpu(cpuinfo)
    if fields is None:
        unknown = dict.fromkeys(("flags", "vnni", "u8s8_exact", "bf16"), UNKNOWN)
        return {**info, **unknown, "source": f"{cpuinfo} not readable ({platform.system()})"}
    present = set(fields.get("flags", "").split())
    flags = [f for f in SIMD_FLAGS if f in present]
    vnni = any(f in flags for f in VNNI_FLAGS)
    features = {**info, "vendor": fields.get("vendor_id", UNKNOWN), "model": fields.get("model name", info["model"])}
    # u8s8_exact: VNNI/AMX, or not x86 (ARM's dot products do not saturate)
    features.update(flags=flags, vnni=vnni, u8s8_exact=vnni or machine.lower() not in X86_MACHINES, source=str(cpuinfo))
    features["bf16"] = bf16_unit(features)
    return features


def bf16_unit(features: dict[str, Any]) -> str | None:
    """The unit OpenVINO computes bf16 on here: ``"amx"``, ``"avx512_bf16"`` or None (f32 is never wrong)."""
    flags = features.get("flags")
    if not isinstance(flags, (list, tuple, set)):
        return None
    units = (("amx", ("amx_bf16", "amx_tile")), ("avx512_bf16", ("avx512_bf16", "avx512f")))
    return next((unit for unit, needs in units if all(f in flags for f in needs)), None)


def describe(features: dict[str, Any]) -> str:
    """One line for logs: ``AMD EPYC [avx2, avx512f, avx512_vnni, avx512_bf16]``."""
    flags = features.get("flags", UNKNOWN)
    listed = ", ".join(flags) if isinstance(flags, list) else str(flags)
    return f"{features.get('model', UNKNOWN)} [{listed or 'no int8/bf16 SIMD flags'}]"


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
