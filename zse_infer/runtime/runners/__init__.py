"""Runners: one per engine kind (ONNX Runtime, TensorRT, OpenVINO, PyTorch), one interface (``base.Runner``);
``select.open_runners`` picks the backend for an export folder."""
