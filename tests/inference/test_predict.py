"""Probability maps: plain and test-time-augmented (8 dihedral views)."""

import numpy as np
import pytest
import torch

from crackseg import create_model
from crackseg.inference import predict_probability

TINY = dict(widths=(8, 16, 16, 32), blocks=(0, 1, 1, 1))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = create_model("carnet", **TINY)
    with torch.no_grad():  # random BatchNorm statistics: an asymmetric, untrained function
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)


def test_probability_map_shape_and_range(model, image):
    for tta in (False, True):
        p = predict_probability(model, image, tta=tta)
        assert p.shape == (64, 48) and p.dtype == np.float32
        assert 0.0 <= p.min() and p.max() <= 1.0


@pytest.mark.parametrize(
    "view",
    [lambda a: np.rot90(a, 1), lambda a: np.rot90(a, 2), lambda a: a[:, ::-1], lambda a: a[::-1]],
    ids=["rot90", "rot180", "hflip", "vflip"],
)
def test_tta_map_follows_the_image_exactly(model, image, view):
    """Averaging over the dihedral group makes the prediction equivariant: rotating or flipping
    the photo rotates or flips the map, whatever the network. A single pass is not."""
    moved = np.ascontiguousarray(view(image))
    tta = predict_probability(model, image, tta=True)
    np.testing.assert_allclose(predict_probability(model, moved, tta=True), view(tta), atol=2e-5)
    single = predict_probability(model, image)
    assert not np.allclose(predict_probability(model, moved), view(single), atol=2e-5)
