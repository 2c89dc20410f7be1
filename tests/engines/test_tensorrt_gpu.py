"""Real TensorRT engines: only where TensorRT and an NVIDIA GPU are present (skipped with the reason otherwise).

Nothing here is mocked: these build engines from a real (tiny) export and run
them against ONNX Runtime CPU and the PyTorch reference stored in the folder.
"""

import pytest

from zse_infer.runtime.runners.trt_environment import probe_tensorrt

pytestmark = pytest.mark.gpu

_ENV = probe_tensorrt()
if not _ENV.ready:
    pytest.skip(f"TensorRT engines cannot be built here: {_ENV.reason}", allow_module_level=True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import torch

    from zse_infer.exporting.pipeline import ExportOptions, export_model
    from zse_infer.model import ZseModel

    root = tmp_path_factory.mktemp("trt")
    torch.manual_seed(0)
    checkpoint = root / "tiny.pth"
    torch.save(ZseModel("tiny").state_dict(), checkpoint)
    out = root / "tiny"
    options = ExportOptions(fp16=True, engines="require", cache_dir=root / "cache")
    return out, export_model(checkpoint, out, config="tiny", options=options), root / "cache"


def test_export_builds_one_engine_per_role_in_its_best_precision(exported):
    out, manifest, _ = exported
    assert sorted(e["graph"] for e in manifest.engines) == [
        "encoder_trt_fp16",
        "relation_head_trt_fp16",
        "relation_pair_trt",
        "relation_photo_trt",
        "relation_sketch_trt",
    ]
    for e in manifest.engines:
        assert (out / e["file"]).is_file() and e["key"]["tensorrt_version"] == _ENV.version
        assert e["key"]["device_name"] == _ENV.device and e["key"]["builder"]["tf32"] is False


def test_engines_match_onnxruntime_and_pytorch(exported):
    from zse_infer.exporting.report import validate_folder

    out, _, _ = exported
    rows = validate_folder(out, engines=True, graphs=False)
    # encoder, relation head, and the three restructured relation engines composed
    assert len(rows) == 3 and all(r.passed for r in rows), rows


def test_rebuild_hits_the_cache(exported):
    from zse_infer.engines.build import build_engines

    out, manifest, cache = exported
    before = {e["file"]: (out / e["file"]).read_bytes() for e in manifest.engines}
    entries = build_engines(out, cache_dir=cache)
    assert {e["file"] for e in entries} == set(before)
    assert all((out / f).read_bytes() == data for f, data in before.items())
    assert any(p.name.startswith("timing.") for p in cache.iterdir())
