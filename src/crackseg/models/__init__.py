"""Crack segmentation models. Build any of them with :func:`create_model`.

Rooms: :mod:`.encoders` and :mod:`.decoders` (each with its contract in its docstring),
:mod:`.segmenter` (encoder + decoder = model), one file per family (:mod:`.carnet`,
:mod:`.lightweight_zoo`, :mod:`.enet`, :mod:`.drn`, :mod:`.bisenet`, :mod:`.dfanet`),
:mod:`.blocks` for the shared pieces, :mod:`.contract` for what every model guarantees,
:mod:`.weights_io` for weights files and :mod:`.pretrained` for the shipped ones.

Importing the package needs no torch: the registry and the families load on first use of a
name below, and :func:`list_models` answers from :data:`MODEL_NAMES` where torch is missing (a
torch-free install that runs exported models).
"""

import fnmatch
import importlib
from typing import Any

#: the family modules; importing one registers its builders (they need torch)
FAMILIES = ("carnet", "lightweight_zoo", "bisenet", "dfanet", "drn", "enet")
#: every registered name, for list_models() without torch (a test keeps it equal to the registry)
MODEL_NAMES = (
    "bisenet",
    "carnet",
    "carnet_deeplabv3plus",
    "carnet_hed",
    "carnet_resnet34",
    "carnet_s",
    "carnet_xs",
    "dfanet",
    "drn_c_26",
    "drn_d_22",
    "enet",
    "lraspp_efficientnet_b0",
    "lraspp_mobilenetv1",
    "lraspp_mobilenetv2",
    "lraspp_mobilenetv3_large",
    "lraspp_mobilenetv3_small",
    "lraspp_shufflenetv2",
    "lraspp_snet146",
    "lraspp_snet146_cem",
    "lraspp_snet49",
    "lraspp_snet535",
    "ufpb_efficientnet_b0",
    "ufpb_mobilenetv1",
    "ufpb_mobilenetv2",
    "ufpb_mobilenetv3_large",
    "ufpb_mobilenetv3_small",
    "ufpb_shufflenetv2",
    "ufpb_snet146",
    "ufpb_snet146_cem",
    "ufpb_snet49",
    "ufpb_snet535",
)
#: public name -> the module that defines it
_API = {
    "create_model": "_registry",
    "list_models": "_registry",
    "model_builder": "_registry",
    "register_model": "_registry",
    "CrackSegmenter": "segmenter",
    "BiSeNet": "bisenet",
    "DFANet": "dfanet",
    "DRN": "drn",
    "ENet": "enet",
}

__all__ = ["create_model", "list_models", "model_builder", "register_model", "CrackSegmenter"]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        for family in FAMILIES:
            importlib.import_module(f".{family}", __name__)
    except ModuleNotFoundError as e:
        if name != "list_models" or (e.name or "").split(".")[0] != "torch":
            raise
        return _names_without_torch
    value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    globals()[name] = value  # later look-ups do not come here
    return value


def _names_without_torch(pattern: str = "*") -> list[str]:
    """:func:`list_models` where torch cannot be imported: the same names, from the list."""
    return sorted(n for n in MODEL_NAMES if fnmatch.fnmatch(n, pattern))
