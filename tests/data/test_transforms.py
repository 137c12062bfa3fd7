"""Augmentation: masks follow the geometry exactly, stay binary, crops find cracks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crackseg.data.io import MEAN, STD, mask_to_tensor, to_tensor
from crackseg.data.transforms import EvalTransform, TrainTransform

GEOMETRY_ONLY = dict(color=False, blur_p=0.0, noise_p=0.0)


def _denorm(x: torch.Tensor) -> torch.Tensor:
    """Back to the 0..255 scale."""
    return (x * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)) * 255.0


def _blocky_pair(h=90, w=110, seed=0):
    """Image whose channel 0 is mask * 255 (other channels random), mask in 6x6 blocks."""
    rng = np.random.default_rng(seed)
    blocks = rng.random((h // 6 + 1, w // 6 + 1)) < 0.3
    mask = np.kron(blocks, np.ones((6, 6), bool))[:h, :w]
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image[:, :, 0] = mask * 255
    return image, mask


def _coord_pair(h=70, w=100, seed=0):
    """Image encoding each pixel's position: channel 0 = row, channel 1 = column."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.uint8)
    image[:, :, 0] = np.arange(h)[:, None]
    image[:, :, 1] = np.arange(w)[None, :]
    image[:, :, 2] = 200
    mask = rng.random((h, w)) < 0.3
    return image, mask


def test_identity_configuration_matches_io_conversion():
    image, mask = _blocky_pair()
    t = TrainTransform(
        crop_size=None, scale=(1.0, 1.0), hflip=False, vflip=False, rot90=False, **GEOMETRY_ONLY
    )
    x, y = t(image, mask)
    assert torch.equal(x, to_tensor(image)) and torch.equal(y, mask_to_tensor(mask))


def test_eval_transform():
    image, mask = _blocky_pair()
    x, y = EvalTransform()(image, mask)
    assert torch.equal(x, to_tensor(image)) and torch.equal(y, mask_to_tensor(mask))
    with pytest.raises(ValueError, match="image's size"):
        EvalTransform()(image, mask[:-1])


@pytest.mark.parametrize(
    ("shape", "crop", "expected"),
    [
        ((90, 110), 64, (64, 64)),
        ((40, 30), 64, (64, 64)),  # smaller than the crop: padded
        ((8, 5), 32, (32, 32)),  # far smaller: reflection in steps
        ((120, 160), (48, 80), (48, 80)),  # a rectangular crop
    ],
)
def test_output_shapes_and_types(shape, crop, expected):
    image, mask = _blocky_pair(*shape)
    for pad_mode in ("reflect", "constant"):
        x, y = TrainTransform(crop_size=crop, pad_mode=pad_mode)(image, mask)
        assert x.dtype == torch.float32 and x.shape == (3, *expected)
        assert y.dtype == torch.float32 and y.shape == (1, *expected)


def test_mask_follows_position_exactly_without_scaling():
    """Each output pixel's encoded source position must carry the source mask value."""
    image, mask = _coord_pair()
    t = TrainTransform(crop_size=96, scale=(1.0, 1.0), **GEOMETRY_ONLY)  # 70 rows: padded
    for seed in range(25):
        torch.manual_seed(seed)
        x, y = t(image, mask)
        src = torch.round(_denorm(x)).long()
        rows, cols = src[0], src[1]
        assert (src[2] == 200).all()  # no resampling happened
        expected = torch.from_numpy(mask)[rows, cols]
        assert torch.equal(y[0].bool(), expected), seed


def test_mask_equals_image_channel_without_scaling():
    image, mask = _blocky_pair()
    t = TrainTransform(crop_size=64, scale=(1.0, 1.0), **GEOMETRY_ONLY)
    for seed in range(40):
        torch.manual_seed(seed)
        x, y = t(image, mask)
        assert torch.equal(y[0].bool(), _denorm(x)[0] > 127), seed


def test_mask_follows_image_with_scale_jitter():
    """With resizing the image is interpolated and the mask is not: they may disagree only on
    interpolated border pixels (image value between 64 and 191), never where the image is
    clearly crack or clearly background, which any shift of even one pixel would break."""
    image, mask = _blocky_pair(120, 150)
    t = TrainTransform(crop_size=64, scale=(0.75, 1.5), **GEOMETRY_ONLY)
    for seed in range(30):
        torch.manual_seed(seed)
        x, y = t(image, mask)
        v = _denorm(x)[0]
        assert set(y.unique().tolist()) <= {0.0, 1.0}
        confident = (v < 64) | (v > 191)
        disagree = y[0].bool() != (v > 127)
        assert not (disagree & confident).any(), seed
        assert disagree.float().mean() < 0.05, seed
        shifted = torch.roll(y[0].bool(), 1, dims=1) != (v > 127)
        assert (shifted & confident).any()  # the check can see a one-pixel shift


def test_mask_stays_binary_with_photometric_on():
    image, mask = _blocky_pair()
    t = TrainTransform(crop_size=64, color=True, color_p=1.0, blur_p=1.0, noise_p=1.0)
    for seed in range(10):
        torch.manual_seed(seed)
        x, y = t(image, mask)
        assert set(y.unique().tolist()) <= {0.0, 1.0}
        assert torch.isfinite(x).all()
        back = _denorm(x)
        assert back.min() > -1.0 and back.max() < 256.0  # photometric output clipped to [0, 1]


def test_photometric_changes_only_the_image():
    image, mask = _blocky_pair()
    geo = dict(crop_size=64, scale=(1.0, 1.0))
    torch.manual_seed(5)
    x0, y0 = TrainTransform(**geo, **GEOMETRY_ONLY)(image, mask)
    torch.manual_seed(5)
    x1, y1 = TrainTransform(**geo, color=True, color_p=1.0, blur_p=1.0, noise_p=1.0)(image, mask)
    # same random draws for geometry come first, so the mask is identical
    assert torch.equal(y0, y1) and not torch.equal(x0, x1)


def test_crack_biased_crop_finds_cracks_more_often():
    image = np.full((256, 256, 3), 128, np.uint8)
    mask = np.zeros((256, 256), bool)
    mask[200:204, 30:34] = True  # one tiny crack: ~0.02 % of the pixels
    hits = {}
    for p in (0.0, 0.7):
        t = TrainTransform(crop_size=48, scale=(1.0, 1.0), crack_crop_p=p, **GEOMETRY_ONLY)
        torch.manual_seed(0)
        hits[p] = sum(bool(t(image, mask)[1].any()) for _ in range(100))
    assert hits[0.0] < 20
    assert hits[0.7] >= 55
    # an empty mask falls back to uniform crops
    t = TrainTransform(crop_size=48, crack_crop_p=1.0)
    assert not t(image, np.zeros_like(mask))[1].any()


def test_determinism_under_manual_seed_and_generator():
    image, mask = _blocky_pair()
    t = TrainTransform(crop_size=64)
    torch.manual_seed(123)
    a = t(image, mask)
    torch.manual_seed(123)
    b = t(image, mask)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = t(image, mask)
    assert not torch.equal(a[0], c[0])
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    d = TrainTransform(crop_size=64, generator=g1)(image, mask)
    e = TrainTransform(crop_size=64, generator=g2)(image, mask)
    assert torch.equal(d[0], e[0]) and torch.equal(d[1], e[1])


def test_rot90_and_flips_are_all_used():
    image, mask = _coord_pair(64, 64)
    t = TrainTransform(crop_size=64, scale=(1.0, 1.0), **GEOMETRY_ONLY)
    corners = set()
    for seed in range(60):
        torch.manual_seed(seed)
        x, _ = t(image, mask)
        src = torch.round(_denorm(x)).long()
        corners.add((int(src[0, 0, 0]), int(src[1, 0, 0]), int(src[0, 0, 1]), int(src[1, 0, 1])))
    assert len(corners) == 8  # the 8 symmetries of the square


def test_bad_arguments():
    with pytest.raises(ValueError, match="pad_mode"):
        TrainTransform(pad_mode="wrap")
    with pytest.raises(ValueError, match="scale"):
        TrainTransform(scale=(0.0, 1.0))
    image, mask = _blocky_pair()
    with pytest.raises(ValueError, match="image's size"):
        TrainTransform()(image, mask.T)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        TrainTransform()(image[:, :, 0], mask)
    with pytest.raises(ValueError, match="uint8"):
        TrainTransform()(image.astype(np.float32) / 255, mask)
    ro = image.copy()
    ro.flags.writeable = False
    assert TrainTransform(32)(ro, mask)[0].shape == (3, 32, 32)  # read-only arrays are fine


def test_works_as_dataset_transform(tmp_path):
    from PIL import Image

    from crackseg.data.datasets import PairedFolderDataset

    image, mask = _blocky_pair()
    (tmp_path / "i").mkdir()
    (tmp_path / "m").mkdir()
    Image.fromarray(image).save(tmp_path / "i" / "a.png")
    Image.fromarray(mask).save(tmp_path / "m" / "a.png")
    ds = PairedFolderDataset(tmp_path / "i", tmp_path / "m", transform=TrainTransform(64))
    loader = torch.utils.data.DataLoader(ds, batch_size=1)
    x, y = next(iter(loader))
    assert x.shape == (1, 3, 64, 64) and y.shape == (1, 1, 64, 64)
