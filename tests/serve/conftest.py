"""Fixtures of the service tests: a tiny random model, photos as upload bytes, app builders."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the service needs FastAPI: pip install -e '.[dev]'")

from PIL import Image  # noqa: E402

from crackseg import create_model  # noqa: E402
from crackseg.data.synth import generate  # noqa: E402
from crackseg.inference import Predictor  # noqa: E402

TINY = dict(widths=(8, 16, 16, 32), blocks=(0, 1, 1, 1))


def encode(image: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="session")
def tiny_predictor() -> Predictor:
    """A random-init CarNet of a few thousand parameters: fast, deterministic, finds 'cracks'."""
    import torch

    torch.manual_seed(0)
    return Predictor.from_model(create_model("carnet", **TINY), threshold=0.5, name="tiny")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    return generate(3, (96, 128), "sunny")[0]


@pytest.fixture(scope="session")
def photo_jpeg(photo) -> bytes:
    return encode(photo, "JPEG", quality=92)
