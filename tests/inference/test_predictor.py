"""The Predictor: tiling, blending, padding, thresholds, backends and checkpoint metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from crackseg import create_model
from crackseg.inference import Predictor, Preprocessing
from crackseg.inference.predictor import blend_window, sigmoid, tile_starts
from crackseg.metrics.protocol import quantize
from crackseg.models.weights_io import save_weights

TINY = dict(widths=(8, 16, 16, 32), blocks=(0, 1, 1, 1))


class PointwiseBackend:
    """Logits that depend on each pixel alone: any tiling must give the whole-image map exactly.
    Records the shapes it was called with (the exportable core must only see divisible sizes)."""

    size_divisor = 16

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.shapes.append(batch.shape)
        return (2.0 * batch[:, :1] - batch[:, 1:2] + 0.5 * batch[:, 2:3]).astype(np.float32)


@pytest.mark.parametrize("length,tile,overlap", [(100, 100, 10), (1000, 256, 32), (257, 256, 0),
                                                 (8000, 1024, 128), (513, 512, 64)])  # fmt: skip
def test_tiles_cover_the_image_with_the_overlap_asked_for(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    assert starts == sorted(starts)
    gaps = np.diff(starts)
    assert all(tile - g >= overlap for g in gaps)  # neighbours overlap at least that much
    assert len(starts) == 1 or all(g > 0 for g in gaps)


def test_blend_window_is_smooth_symmetric_and_never_zero():
    w = blend_window(256, 64)
    assert w.min() > 0 and w.max() == 1.0
    np.testing.assert_allclose(w, w[::-1])
    assert np.all(np.diff(w[:64]) > 0)
    assert np.all(w[64:192] == 1.0)


@pytest.mark.parametrize("shape", [(37, 53), (300, 500), (1111, 777), (64, 2000)])
@pytest.mark.parametrize("tile,overlap,batch", [(64, 16, 3), (128, 48, 1), (2048, 128, 4)])
def test_tiled_map_equals_whole_map_for_a_pointwise_model(shape, tile, overlap, batch):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    backend = PointwiseBackend()
    tiled = Predictor(backend, tile_size=tile, overlap=overlap, batch_size=batch)
    levels = tiled.predict_levels(image)
    x = Preprocessing()(image)[None]
    expected = quantize(sigmoid(PointwiseBackend()(x))[0, 0])
    assert levels.shape == shape and levels.dtype == np.uint8
    # blending the same value from several tiles may move float32 sums by an ulp
    assert np.abs(levels.astype(int) - expected).max() <= 1
    assert (levels != expected).mean() < 1e-3
    assert all(s[-2] % 16 == 0 and s[-1] % 16 == 0 for s in backend.shapes)
    assert max(s[0] for s in backend.shapes) <= batch


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("carnet", **TINY).eval()


def test_whole_image_prediction_matches_the_model_padding_itself(model):
    """The predictor pads outside the model (replicate, bottom / right) exactly as the model's
    own forward does for odd sizes, so scores of earlier runs stay comparable."""
    image = np.random.default_rng(1).integers(0, 256, (70, 93, 3), dtype=np.uint8)
    p = Predictor.from_model(model).predict_levels(image)
    with torch.no_grad():
        ref = torch.sigmoid(model(torch.from_numpy(Preprocessing()(image))[None]))[0, 0].numpy()
    assert np.abs(p.astype(int) - quantize(ref).astype(int)).max() <= 1


def test_tiling_a_real_network_changes_little_where_tiles_overlap(model):
    image = np.random.default_rng(2).integers(0, 256, (200, 260, 3), dtype=np.uint8)
    whole = Predictor.from_model(model).probability(image)
    tiled = Predictor.from_model(model, tile_size=128, overlap=48).probability(image)
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).mean() < 0.05  # context differs only near tile borders


def test_scale_returns_a_map_of_the_input_size(model):
    image = np.random.default_rng(3).integers(0, 256, (101, 150, 3), dtype=np.uint8)
    for scale in (0.5, 1.5):
        assert Predictor.from_model(model, scale=scale).predict_levels(image).shape == (101, 150)


class DarkIsCrackBackend:
    """Logits from brightness alone: dark pixels are crack (a pointwise model, so a map at any
    scale is the resized photo's own map)."""

    size_divisor = 16

    def __init__(self) -> None:
        self.heights: list[int] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.heights.append(batch.shape[-2])
        return (12.0 * (0.5 - batch.mean(axis=1, keepdims=True))).astype(np.float32)


def _photo_with_a_crack(width: int) -> np.ndarray:
    image = np.full((160, 192, 3), 230, np.uint8)
    image[:, 96 - width // 2 : 96 - width // 2 + width] = 20  # one vertical crack
    return image


@pytest.mark.parametrize("width", [3, 12])
def test_auto_scale_adds_a_half_size_pass_only_for_wide_cracks(width):
    image = _photo_with_a_crack(width)
    plain = Preprocessing((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    native = Predictor(DarkIsCrackBackend(), plain).predict_levels(image)
    half = Predictor(DarkIsCrackBackend(), plain, scale=0.5).predict_levels(image)
    backend = DarkIsCrackBackend()
    auto = Predictor(backend, plain, scale="auto")
    levels = auto.predict_levels(image)
    assert levels.shape == image.shape[:2] and levels.dtype == np.uint8
    if width > 5:  # wide: the mean of the native and the half-size maps, rounded half up
        expected = (native.astype(int) + half + 1) // 2
        assert backend.heights == [160, 80]
        assert not np.array_equal(native, half)  # so the test tells the two rules apart
    else:  # thin: the native map alone, one pass
        expected = native
        assert backend.heights == [160]
    np.testing.assert_array_equal(levels, expected)
    assert auto.describe()["scale"] == "auto"


def test_auto_scale_rule_reads_the_crack_width_of_the_map():
    thin = np.zeros((100, 100), np.uint8)
    thin[:, 50:53] = 255
    wide = np.zeros((100, 100), np.uint8)
    wide[:, 40:52] = 200
    assert not Predictor.wants_second_scale(thin, 0.5)
    assert Predictor.wants_second_scale(wide, 0.5)
    assert not Predictor.wants_second_scale(wide, 0.9)  # its mask at the threshold is empty
    assert not Predictor.wants_second_scale(np.zeros((50, 50), np.uint8), 0.5)  # no crack


@pytest.mark.parametrize("bad", ["fast", "", "Auto "])
def test_scale_must_be_a_number_or_auto(bad):
    with pytest.raises(ValueError, match="'auto'"):
        Predictor(PointwiseBackend(), scale=bad)


def test_tta_is_equivariant_through_tiles(model):
    image = np.random.default_rng(4).integers(0, 256, (160, 224, 3), dtype=np.uint8)
    pred = Predictor.from_model(model, tile_size=96, overlap=32, tta=True)
    a = pred.predict_levels(image).astype(int)
    b = pred.predict_levels(np.ascontiguousarray(image[:, ::-1])).astype(int)
    # tiles are laid out from the left edge, so a flipped image is tiled differently: compare
    # away from tile borders loosely, and for a single tile up to the order in which the eight
    # views are summed (float rounding can move a pixel that sits on a level boundary by one)
    assert np.abs(a - b[:, ::-1]).mean() < 3
    one = Predictor.from_model(model, tta=True)
    c = one.predict_levels(image)[:, ::-1].astype(int)
    d = one.predict_levels(np.ascontiguousarray(image[:, ::-1])).astype(int)
    assert np.abs(c - d).max() <= 1
    assert (c != d).mean() < 1e-3


def test_mask_follows_the_protocol_threshold_rule():
    backend = PointwiseBackend()
    pred = Predictor(backend, threshold=0.5)
    image = np.random.default_rng(5).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    r = pred.predict(image)
    assert r.threshold == 0.5
    np.testing.assert_array_equal(r.mask, r.levels >= 128)
    np.testing.assert_array_equal(pred.predict(image, threshold=0.2).mask, r.levels >= 51)


def test_checkpoint_metadata_sets_threshold_and_normalisation(model, tmp_path):
    path = tmp_path / "m.safetensors"
    extra = {"threshold": 0.3, "preprocessing": {"mean": [0.5, 0.5, 0.5], "std": [0.25] * 3}}
    save_weights(path, model, "carnet", TINY, extra)
    pred = Predictor.from_checkpoint(path, precision="fp32", channels_last=False)
    assert pred.threshold == 0.3
    assert pred.preprocessing == Preprocessing((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert json.loads(json.dumps(pred.describe()))["precision"] == "fp32"


@pytest.mark.parametrize(
    "kwargs", [{"tile_size": 8}, {"overlap": 600}, {"batch_size": 0}, {"threshold": 2}]
)
def test_bad_settings_are_refused_with_a_message(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs)).split("_")[0]):
        Predictor(PointwiseBackend(), **kwargs)


def test_bad_images_are_refused_with_a_message():
    pred = Predictor(PointwiseBackend())
    with pytest.raises(ValueError, match="RGB"):
        pred.predict_levels(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        pred.predict_levels(np.zeros((10, 10, 3), np.float32))
