"""Tests of the procedural synthetic crack generator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from crackseg.data import synth
from crackseg.data.synth import (
    CONDITIONS,
    SynthCrackDataset,
    conditions_for,
    generate,
    sample_seed,
    write_dataset,
)


def _gray(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32).mean(axis=2)


@pytest.mark.parametrize("condition", CONDITIONS)
def test_same_seed_same_arrays_and_different_seeds_differ(condition: str) -> None:
    a_img, a_mask = generate(5, 96, condition)
    b_img, b_mask = generate(5, 96, condition)
    assert np.array_equal(a_img, b_img)
    assert np.array_equal(a_mask, b_mask)
    c_img, c_mask = generate(6, 96, condition)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_mask, c_mask)


@pytest.mark.parametrize("condition", CONDITIONS)
def test_shapes_dtypes_binary_mask_and_plausible_fraction(condition: str) -> None:
    for seed in range(4):
        image, mask = generate(seed, 128, condition)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert mask.shape == (128, 128) and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) == {0, 1}
        assert 0.003 <= mask.mean() <= 0.2


def test_non_square_size() -> None:
    image, mask = generate(3, (64, 112), "rainy")
    assert image.shape == (64, 112, 3)
    assert mask.shape == (64, 112)
    assert mask.sum() > 0


def test_conditions_have_distinct_statistics() -> None:
    seeds = range(4)
    brightness = {}
    high_freq = {}
    for condition in CONDITIONS:
        b, hf = [], []
        for seed in seeds:
            gray = _gray(generate(seed, 128, condition)[0])
            b.append(gray.mean())
            hf.append(np.abs(gray - ndimage.uniform_filter(gray, 3)).mean())
        brightness[condition] = float(np.mean(b))
        high_freq[condition] = float(np.mean(hf))
    assert brightness["night"] < brightness["rainy"] < brightness["sunny"]
    assert high_freq["night"] > 1.2 * high_freq["sunny"]


@pytest.mark.parametrize("condition", CONDITIONS)
def test_crack_pixels_darker_than_their_surroundings(condition: str) -> None:
    for seed in range(3):
        image, mask = generate(seed, 128, condition)
        gray = _gray(image)
        crack = mask.astype(bool)
        ring = ndimage.binary_dilation(crack, iterations=3) & ~crack
        assert gray[crack].mean() < gray[ring].mean() - 3.0


@pytest.mark.parametrize("condition", CONDITIONS)
def test_darkening_is_exactly_the_mask(condition: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering with the crack darkening switched off changes only the masked pixels."""
    with_crack, mask = generate(11, 96, condition)
    real = synth._crack_darkening

    def no_darkening(rng: np.random.Generator, depth: np.ndarray) -> tuple:
        m, dark = real(rng, depth)  # same random draws, so the rest of the image is identical
        return m, np.zeros_like(dark)

    monkeypatch.setattr(synth, "_crack_darkening", no_darkening)
    without_crack, mask2 = generate(11, 96, condition)
    assert np.array_equal(mask, mask2)
    crack = mask.astype(bool)
    diff = without_crack.astype(np.int16) - with_crack.astype(np.int16)
    assert not diff[~crack].any()
    assert (diff[crack] >= 0).all()
    assert (diff[crack].max(axis=1) > 0).mean() > 0.9


def test_crack_widths_vary() -> None:
    per_sample_max = []
    ridge_values = []
    for seed in range(6):
        mask = generate(seed, 256, "sunny")[1]
        dist = ndimage.distance_transform_edt(mask)
        ridge = (mask > 0) & (dist >= ndimage.maximum_filter(dist, size=3))
        ridge_values.append(dist[ridge])
        per_sample_max.append(dist.max())
    values = np.concatenate(ridge_values)
    assert values.min() <= 1.0  # hairline cracks, one or two pixels wide
    assert max(per_sample_max) >= 3.0  # wide cracks, six pixels or more
    assert min(per_sample_max) < max(per_sample_max) - 1.0  # widths differ between samples
    assert np.percentile(values, 90) <= 5.0


def test_conditions_for() -> None:
    assert conditions_for("all", 5) == ["sunny", "rainy", "night", "sunny", "rainy"]
    assert conditions_for("night", 2) == ["night", "night"]
    with pytest.raises(ValueError, match="sunny.*rainy.*night"):
        conditions_for("snowy", 2)


def test_unknown_condition_names_the_valid_ones(tmp_path) -> None:
    with pytest.raises(ValueError) as info:
        generate(0, 64, "foggy")
    for name in CONDITIONS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="sunny"):
        write_dataset(tmp_path, n=1, size=64, condition="foggy", progress=False)
    with pytest.raises(ValueError, match="sunny"):
        SynthCrackDataset(1, size=64, condition="foggy")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="size"):
        generate(0, 16)
    with pytest.raises(ValueError, match="size"):
        generate(0, (64, 31))
    with pytest.raises(ValueError, match="seed"):
        generate(-1, 64)
    with pytest.raises(ValueError, match="n must"):
        SynthCrackDataset(0, size=64)


def _read_dir(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.*"))}


def test_write_dataset(tmp_path) -> None:
    out = write_dataset(tmp_path / "a", n=3, size=64, condition="all", seed=7, progress=False)
    assert out == tmp_path / "a"
    images = sorted(p.name for p in (out / "images").iterdir())
    masks = sorted(p.name for p in (out / "masks").iterdir())
    assert images == masks == ["synth_00000.png", "synth_00001.png", "synth_00002.png"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["size"] == [64, 64]
    assert manifest["version"] == synth.GENERATOR_VERSION
    assert [it["condition"] for it in manifest["items"]] == ["sunny", "rainy", "night"]
    for i, item in enumerate(manifest["items"]):
        assert item["seed"] == sample_seed(7, i)
        image = np.asarray(Image.open(out / item["image"]))
        mask = np.asarray(Image.open(out / item["mask"]))
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert mask.shape == (64, 64) and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) == {0, 255}
        ref_image, ref_mask = generate(item["seed"], 64, item["condition"])
        assert np.array_equal(image, ref_image)
        assert np.array_equal(mask, ref_mask * 255)
    again = write_dataset(tmp_path / "b", n=3, size=64, condition="all", seed=7, progress=False)
    assert _read_dir(out) == _read_dir(again)


def test_dataset_tensors_and_raw_samples() -> None:
    ds = SynthCrackDataset(3, size=64, condition="all", seed=7)
    assert len(ds) == 3
    assert ds.names == ["synth_00000", "synth_00001", "synth_00002"]
    assert ds.conditions == ["sunny", "rainy", "night"]
    image, mask = ds[1]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert mask.shape == (1, 64, 64) and mask.dtype == torch.float32
    assert set(torch.unique(mask).tolist()) == {0.0, 1.0}
    raw_image, raw_mask = ds.sample(1)
    ref_image, ref_mask = generate(sample_seed(7, 1), 64, "rainy")
    assert np.array_equal(raw_image, ref_image) and np.array_equal(raw_mask, ref_mask)

    ds_t = SynthCrackDataset(2, size=(48, 64), condition="night", transform=lambda i, m: (i, m))
    out_image, out_mask = ds_t[0]
    assert out_image.shape == (48, 64, 3) and out_image.dtype == np.uint8
    assert out_mask.shape == (48, 64) and set(np.unique(out_mask).tolist()) == {0, 1}
    assert ds_t.conditions == ["night", "night"]
