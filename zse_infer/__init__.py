"""zse-infer: deployable inference for ZSE-SBIR (zero-shot sketch-based image retrieval).

``import zse_infer`` imports neither torch nor onnxruntime: ``Retriever`` and friends are resolved on first access.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from .errors import ZseError

if TYPE_CHECKING:
    # What type checkers and IDEs see (the lazy names below, with their real types); never run, so the
    # runtime import stays light. tests/test_init.py keeps this list and _LAZY the same.
    from .runtime.gallery.store import Gallery
    from .runtime.retriever import Hit, Retriever

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    "Retriever": "zse_infer.runtime.retriever",
    "Hit": "zse_infer.runtime.retriever",
    "Gallery": "zse_infer.runtime.gallery.store",
}

__all__ = ["Gallery", "Hit", "Retriever", "ZseError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zse_infer' has no attribute {name!r}")
