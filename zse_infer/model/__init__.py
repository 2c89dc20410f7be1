"""The PyTorch side: encoder and relation head modules, and checkpoint loading (imports torch and timm; the runtime
side never imports this package)."""

from .checkpoint import checkpoint_filter_fn, read_checkpoint, to_official_state_dict
from .encoder import Encoder
from .relation_head import RelationHead
from .zse import ZseModel, load_model, load_state

__all__ = [
    "Encoder",
    "RelationHead",
    "ZseModel",
    "checkpoint_filter_fn",
    "load_model",
    "load_state",
    "read_checkpoint",
    "to_official_state_dict",
]
