"""Runners: one per engine kind (ONNX Runtime, TensorRT, PyTorch), one interface (``base.Runner``).

``select.open_runners`` picks a backend for an export folder; ``engine_cache`` and
``engine_locate`` find the TensorRT engine built for this GPU; ``trt_environment``
probes TensorRT and the GPU without importing torch.
"""
