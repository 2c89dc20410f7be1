"""Shared fixtures. Test data lives in tests/data (copied from the project's shared folder once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session", autouse=True)
def _cpu_without_bf16_unit(tmp_path_factory):
    """The suite runs as on this CPU without its bf16 units (AMX, AVX512-BF16): ``backend="auto"`` then
    means ONNX Runtime fp32 on every machine, as the parity tests expect. Tests of the bf16 choice
    inject their own cpuinfo (tests/runtime/runners/test_openvino_backend.py); subprocesses inherit it."""
    import os

    from zse_infer.runtime.runners.cpu_features import BF16_FLAGS, CPUINFO, CPUINFO_ENV

    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        yield  # no /proc/cpuinfo: features are "unknown", which never chooses bf16
        return
    hidden = set(BF16_FLAGS)
    lines = [
        " ".join(w for w in line.split(" ") if w not in hidden) if line.startswith("flags") else line
        for line in text.splitlines()
    ]
    path = tmp_path_factory.mktemp("cpuinfo") / "cpuinfo"
    path.write_text("\n".join(lines) + "\n")
    before = os.environ.get(CPUINFO_ENV)
    os.environ[CPUINFO_ENV] = str(path)
    yield
    if before is None:
        os.environ.pop(CPUINFO_ENV, None)
    else:
        os.environ[CPUINFO_ENV] = before


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def golden() -> dict:
    with np.load(DATA / "official_seed1.npz") as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="session")
def golden_images() -> dict:
    images = sorted((DATA / "images").iterdir())
    return {
        "sketch": [p for p in images if p.name.startswith("sketch_")],
        "photo": [p for p in images if p.name.startswith("photo_")],
    }


@pytest.fixture(scope="session")
def parity_state() -> dict:
    """The parity weights of docs/spec.md in the official layout, as torch tensors."""
    torch = pytest.importorskip("torch")
    from tests.support.parity import parity_state_dict, read_key_list

    keys = read_key_list(DATA / "official_state_dict.tsv")
    return {k: torch.from_numpy(v) for k, v in parity_state_dict(keys).items()}


@pytest.fixture(scope="session")
def parity_model(parity_state):
    from zse_infer.model import load_model

    return load_model({"model": parity_state}, config="zse_vit_b16")


@pytest.fixture
def tiny_model():
    torch = pytest.importorskip("torch")
    from zse_infer.model import ZseModel

    torch.manual_seed(0)
    return ZseModel("tiny").eval()


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    """An export folder (ONNX graphs + manifest) of a seeded tiny model, with its checkpoint."""
    torch = pytest.importorskip("torch")
    from zse_infer.exporting import export_model
    from zse_infer.model import ZseModel, to_official_state_dict

    root = tmp_path_factory.mktemp("tiny_export")
    torch.manual_seed(0)
    model = ZseModel("tiny").eval()
    checkpoint = root / "tiny.pth"
    torch.save({"model": to_official_state_dict(model.state_dict()), "epoch": 1}, checkpoint)
    out = root / "export"
    export_model(checkpoint, out, config="tiny", recipe="tiny")
    return out


@pytest.fixture(scope="session")
def tiny_int8_export(tmp_path_factory) -> Path:
    """An export folder of a seeded tiny model with the int8 graphs (no extra graphs); read-only, copy to tamper."""
    torch = pytest.importorskip("torch")
    from zse_infer.exporting.pipeline import ExportOptions, export_model
    from zse_infer.model import ZseModel

    root = tmp_path_factory.mktemp("tiny_int8")
    torch.manual_seed(0)
    torch.save({"model": ZseModel("tiny").state_dict()}, root / "tiny.pth")
    export_model(root / "tiny.pth", root / "out", config="tiny", options=ExportOptions(int8=True, extra_graphs=False))
    return root / "out"


@pytest.fixture(scope="session")
def full_export(parity_state, tmp_path_factory):
    """One full-size (ViT-B/16) export of the parity weights per session (fp32 + fp16, every graph):
    about 2.5 minutes on 2 cores, ~1.8 GB in a temp folder. Shared by every slow test that needs it."""
    import torch

    from zse_infer.exporting.pipeline import ExportOptions, export_model

    root = tmp_path_factory.mktemp("full_export")
    checkpoint = root / "best_checkpoint.pth"
    torch.save({"model": parity_state, "epoch": 1}, checkpoint)
    out = root / "zse_vit_b16"
    manifest = export_model(checkpoint, out, config="zse_vit_b16", options=ExportOptions(fp16=True))
    return out, manifest
