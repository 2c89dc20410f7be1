"""PyTorch backend: the eager modules from the source checkpoint, for debugging and parity checks."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ...errors import BackendError, IntegrityError, require
from ...manifest import GraphSpec, Manifest, sha256_file
from .base import Runner

_log = logging.getLogger(__name__)


class TorchRunner(Runner):
    backend = "torch"

    def __init__(self, graph: GraphSpec, model, max_batch: int | None = None):
        super().__init__(graph, max_batch)
        self.torch = require("torch", "export", "The PyTorch backend")
        self.model, self.device_ = model, next(model.parameters()).device
        if graph.role not in ("encoder", "relation_head", "explain"):
            roles = "encoder, relation_head and explain graphs"
            raise BackendError(f"the PyTorch backend runs {roles}, not {graph.role!r}")
        self._explain = None
        if graph.role == "explain":
            from ...model.explain import ExplainHead

            self._explain = ExplainHead(model.relation_head).eval()

    @property
    def device(self) -> str:
        return str(self.device_)

    def _run_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        dtype = next(self.model.parameters()).dtype
        tensors = {k: torch.from_numpy(v).to(self.device_, dtype) for k, v in inputs.items()}
        with torch.inference_mode():
            if self.graph.role == "encoder":
                return {self.graph.outputs[0].name: _numpy(self.model.encode(tensors[self.graph.inputs[0].name]))}
            names = [t.name for t in self.graph.inputs]
            if self._explain is not None:
                outputs = self._explain(tensors[names[0]], tensors[names[1]])
                return {t.name: _numpy(outputs[t.name]) for t in self.graph.outputs}
            out = self.model.relate(tensors[names[0]], tensors[names[1]])
        return {self.graph.outputs[0].name: _numpy(out)}


def _numpy(t) -> np.ndarray:
    return t.float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy()


def load_torch_model(manifest: Manifest, checkpoint: str | os.PathLike | None, precision: str = "fp32"):
    """The eager model for a manifest: from ``checkpoint`` or the manifest's recorded source."""
    torch = require("torch", "export", "The PyTorch backend")
    from ...model import load_model  # torch side, imported only for this backend

    source = manifest.source_checkpoint
    path = Path(checkpoint) if checkpoint else (Path(source["path"]) if source.get("path") else None)
    if path is None or not path.is_file():
        recorded = f"(the manifest records {source.get('path')!r}, which is not a file here)"
        raise BackendError(f"the PyTorch backend needs the source checkpoint: pass checkpoint=... {recorded}")
    if not checkpoint and source.get("sha256") and sha256_file(path) != source["sha256"]:
        raise IntegrityError(f"{path}: does not match the checkpoint this folder was exported from (sha256 differs)")
    model = load_model(path, config=manifest.model)
    if torch.cuda.is_available():
        model = model.cuda()
        if precision == "fp16":
            model = model.half()
    elif precision == "fp16":
        _log.warning("fp16 requested for the PyTorch backend on CPU: running fp32")
    return model
