"""Crack segmentation models. Build any of them with :func:`create_model`."""

from . import carnet  # noqa: F401  (registers the CarNet family)
from ._registry import create_model, list_models, model_builder, register_model
from .bisenet import BiSeNet  # noqa: F401  (registers bisenet)
from .carnet import CrackSegmenter
from .dfanet import DFANet  # noqa: F401  (registers dfanet)
from .drn import DRN  # noqa: F401  (registers drn_c_26, drn_d_22)
from .enet import ENet  # noqa: F401  (registers enet)

__all__ = ["create_model", "list_models", "model_builder", "register_model", "CrackSegmenter"]
