"""The runtime side (no torch), laid out in the order data flows.

runners/         run exported graphs (ONNX Runtime, TensorRT, PyTorch for parity)
photo_sources    expand paths, folders and list files into photos (the indexer's reader)
gallery/         the store of encoded photos and the stage-1 index
explainer        explanations and sketch-to-photo synthesis
retriever        the ``Retriever`` facade over indexing, search and explanations
"""
