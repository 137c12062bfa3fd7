"""Crack segmentation models. Build any of them with :func:`create_model`.

Rooms: :mod:`.encoders` and :mod:`.decoders` (each with its contract in its docstring),
:mod:`.segmenter` (encoder + decoder = model), one file per family (:mod:`.carnet`,
:mod:`.lightweight_zoo`, :mod:`.enet`, :mod:`.drn`, :mod:`.bisenet`, :mod:`.dfanet`),
:mod:`.blocks` for the shared pieces, :mod:`.contract` for what every model guarantees,
:mod:`.weights_io` for weights files and :mod:`.pretrained` for the shipped ones.
"""

from . import carnet, lightweight_zoo  # noqa: F401  (register the families)
from ._registry import create_model, list_models, model_builder, register_model
from .bisenet import BiSeNet  # noqa: F401  (registers bisenet)
from .dfanet import DFANet  # noqa: F401  (registers dfanet)
from .drn import DRN  # noqa: F401  (registers drn_c_26, drn_d_22)
from .enet import ENet  # noqa: F401  (registers enet)
from .segmenter import CrackSegmenter

__all__ = ["create_model", "list_models", "model_builder", "register_model", "CrackSegmenter"]
