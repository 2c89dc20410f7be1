"""Parity of exported graphs: ONNX Runtime (CPU) against the PyTorch model, on built-in inputs stored with the PyTorch
outputs in ``parity_inputs.npz`` (``zse-export validate`` needs no checkpoint or torch). Needs numpy and onnxruntime."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..errors import ExportError, require
from ..manifest import ENCODER_INPUT, ENCODER_OUTPUT, HEAD_INPUTS, HEAD_OUTPUT

PARITY_FILE = "parity_inputs.npz"
ROLE_INPUTS = {"encoder": (ENCODER_INPUT,), "relation_head": HEAD_INPUTS}
ROLE_OUTPUTS = {"encoder": (ENCODER_OUTPUT,), "relation_head": (HEAD_OUTPUT,)}


def builtin_images(config: ModelConfig, count: int, seed: int) -> np.ndarray:
    """``count`` float32 (3, S, S) images in the normalised range [-1, 1]: blocky shapes plus a little noise
    (blocks rather than pure noise so attention sees structure, as with real images)."""
    size, patch, rng = config.encoder.image_size, config.encoder.patch_size, np.random.default_rng(seed)
    coarse = rng.uniform(-1.0, 1.0, size=(count, 3, size // patch, size // patch))
    blocks = np.kron(coarse, np.ones((1, 1, patch, patch)))
    return np.clip(blocks + rng.normal(0.0, 0.1, size=blocks.shape), -1.0, 1.0).astype(np.float32)


def reference_data(model: Any, config: ModelConfig, batch_sizes: Sequence[int], seed: int) -> dict[str, np.ndarray]:
    """Built-in inputs and the PyTorch model's outputs for them (float32 arrays keyed by graph I/O name)."""
    import torch

    images = builtin_images(config, max(batch_sizes), seed)
    with torch.no_grad():
        tokens = model.encode(torch.from_numpy(images))
        photo = torch.roll(tokens, shifts=1, dims=0)  # pair each image with a different one (when there are 2+)
        score = model.relate(tokens, photo)
    outputs = {ENCODER_OUTPUT: tokens, HEAD_INPUTS[0]: tokens, HEAD_INPUTS[1]: photo, HEAD_OUTPUT: score}
    return {ENCODER_INPUT: images, **{name: t.numpy() for name, t in outputs.items()}}


def save_reference(data: Mapping[str, np.ndarray], path: Path, batch_sizes: Sequence[int]) -> None:
    # One dict: numpy's stubs type **kwargs alongside savez's allow_pickle: bool, which arrays cannot satisfy.
    arrays: dict[str, Any] = {"batch_sizes": np.asarray(batch_sizes, dtype=np.int64), **data}
    np.savez(path, **arrays)


def load_reference(path: Path) -> tuple[dict[str, np.ndarray], list[int]]:
    if not path.is_file():
        raise ExportError(f"{path}: missing; expected the built-in parity inputs written by zse-export")
    with np.load(path) as npz:
        data = {k: npz[k] for k in npz.files}
    return data, [int(b) for b in data.pop("batch_sizes")]


Runner = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


def ort_cpu_runner(path: Path) -> Runner:
    """A function feeds -> outputs over an ONNX Runtime CPU session of ``path``."""
    ort = require("onnxruntime", "runtime", "validating exported graphs")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers etc. are noise here
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own (pybind) exception types
        raise ExportError(f"{path}: ONNX Runtime (CPU) cannot load the graph ({exc})") from exc
    names = [o.name for o in session.get_outputs()]

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, dict(feeds)), strict=True))

    return run


def measure_parity(
    run: Runner, role: str, data: Mapping[str, np.ndarray], batch_sizes: Sequence[int]
) -> dict[str, float]:
    """Max abs error per output of ``run`` against the reference outputs, over every batch size."""
    errors = dict.fromkeys(ROLE_OUTPUTS[role], 0.0)
    for b in batch_sizes:
        feeds = {name: np.ascontiguousarray(data[name][:b]) for name in ROLE_INPUTS[role]}
        outputs = run(feeds)
        for name in errors:
            got, want = np.asarray(outputs[name], dtype=np.float32), data[name][:b]
            if got.shape != want.shape:
                raise ExportError(f"output {name} at batch {b}: received shape {got.shape}, expected {want.shape}")
            err = float(np.abs(got - want).max()) if np.all(np.isfinite(got)) else float("inf")
            errors[name] = max(errors[name], err)
    return errors


def check_tolerance(what: str, parity: Mapping[str, float], tolerance: Mapping[str, float]) -> None:
    """Raise :class:`ExportError` naming every output whose error exceeds its tolerance."""
    failures = [
        f"{name}: max abs error {err:.3g} > tolerance {tolerance[name]:.3g}"
        for name, err in parity.items()
        if name in tolerance and not err <= tolerance[name]
    ]
    if failures:
        raise ExportError(f"{what} failed validation against PyTorch: " + "; ".join(failures))
