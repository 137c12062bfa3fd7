"""Tests of the procedural hard-negative scene generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from crackseg.data import synth
from crackseg.data.hardneg import SCENES, HardNegativeDataset, generate_hard, scenes_for


def _line_energy(image: np.ndarray) -> float:
    """Mean gradient magnitude of a band-passed grey image: high for line / edge structure,
    low for fine grain (removed by the small blur) and smooth shading (removed by the DoG)."""
    x = image.astype(np.float32).mean(axis=2)
    d = ndimage.gaussian_filter(x, 2.0) - ndimage.gaussian_filter(x, 8.0)
    return float(np.hypot(ndimage.sobel(d, 0), ndimage.sobel(d, 1)).mean())


def test_scenes_constant() -> None:
    assert SCENES == ("masonry", "formwork", "joints", "road_markings", "shadows")
    assert scenes_for("any", 7) == [*SCENES, SCENES[0], SCENES[1]]
    assert scenes_for("joints", 2) == ["joints", "joints"]


@pytest.mark.parametrize("scene", [*SCENES, "any"])
def test_deterministic_and_seed_dependent(scene: str) -> None:
    a_img, a_mask = generate_hard(3, 96, scene, crack_p=0.5)
    b_img, b_mask = generate_hard(3, 96, scene, crack_p=0.5)
    assert np.array_equal(a_img, b_img)
    assert np.array_equal(a_mask, b_mask)
    c_img, _ = generate_hard(4, 96, scene, crack_p=0.5)
    assert not np.array_equal(a_img, c_img)


@pytest.mark.parametrize("scene", SCENES)
def test_scene_does_not_depend_on_crack_p(scene: str) -> None:
    # the same seed gives the same scene; only the crack pixels differ
    clean, empty = generate_hard(11, 96, scene, crack_p=0.0)
    cracked, mask = generate_hard(11, 96, scene, crack_p=1.0)
    assert not empty.any() and mask.any()
    diff = np.abs(clean.astype(int) - cracked.astype(int)).max(axis=2)
    # the cracks touch exactly the masked pixels; inside, they darken the surface
    assert diff[~mask].max() == 0
    assert cracked[mask].mean() < clean[mask].mean() - 5


@pytest.mark.parametrize("scene", SCENES)
@pytest.mark.parametrize("size", [(97, 131), 384])
def test_shapes_and_dtypes_at_odd_and_large_sizes(scene: str, size: int | tuple) -> None:
    image, mask = generate_hard(1, size, scene, crack_p=1.0)
    hw = size if isinstance(size, tuple) else (size, size)
    assert image.shape == (*hw, 3) and image.dtype == np.uint8
    assert mask.shape == hw and mask.dtype == np.bool_
    assert image.std() > 5  # not a flat image


@pytest.mark.parametrize("scene", SCENES)
def test_mask_empty_without_cracks_and_mostly_present_with(scene: str) -> None:
    for seed in range(4):
        _, mask = generate_hard(seed, 96, scene, crack_p=0.0)
        assert not mask.any()
    present = [generate_hard(seed, 96, scene, crack_p=1.0)[1].mean() for seed in range(8)]
    assert sum(f > 0.002 for f in present) >= 7
    assert max(present) < 0.3


def test_crack_p_is_a_probability() -> None:
    has = [generate_hard(s, 64, "any", crack_p=0.5)[1].any() for s in range(40)]
    assert 8 <= sum(has) <= 32


def test_hard_negatives_have_strong_line_structure() -> None:
    shape = (160, 160)
    plain = []
    for seed in range(6):
        lum, tint = synth._surface(np.random.default_rng(seed), shape)
        surf = np.clip(lum[..., None] * tint * 255.0 + 0.5, 0, 255).astype(np.uint8)
        plain.append(_line_energy(surf))
    base = float(np.mean(plain))
    per_scene = {
        scene: float(
            np.mean([_line_energy(generate_hard(s, shape, scene, 0.0)[0]) for s in range(6)])
        )
        for scene in SCENES
    }
    for scene, energy in per_scene.items():
        assert energy > 1.3 * base, (scene, energy, base)
    assert np.mean(list(per_scene.values())) > 1.8 * base


def test_mask_marks_darkened_pixels_only() -> None:
    # crack pixels are darker than their surroundings on average
    for scene in SCENES:
        image, mask = generate_hard(5, 128, scene, crack_p=1.0)
        grey = image.astype(np.float32).mean(axis=2)
        ring = ndimage.binary_dilation(mask, iterations=3) & ~mask
        assert grey[mask].mean() < grey[ring].mean(), scene


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_hard(0, 64, "forest")
    with pytest.raises(ValueError):
        generate_hard(-1, 64)
    with pytest.raises(ValueError):
        generate_hard(0, 16)
    with pytest.raises(ValueError):
        generate_hard(0, 64, crack_p=1.5)


def test_dataset_interface() -> None:
    ds = HardNegativeDataset(7, size=(64, 80), seed=2, crack_p=1.0)
    assert len(ds) == 7
    assert ds.names[0] == "hardneg_00000"
    assert ds.scenes == scenes_for("any", 7)
    image, mask = ds.sample(3)
    assert image.shape == (64, 80, 3) and image.dtype == np.uint8
    assert mask.shape == (64, 80) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    again = HardNegativeDataset(7, size=(64, 80), seed=2, crack_p=1.0, cache=False).sample(3)
    assert np.array_equal(image, again[0]) and np.array_equal(mask, again[1])
    assert np.array_equal(ds.sample(-1)[0], ds.sample(6)[0])
    x, y = ds[0]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 64, 80)
    assert y.shape == (1, 64, 80) and y.dtype == torch.float32
    seen = []
    ds_t = HardNegativeDataset(
        2, size=48, scene="masonry", transform=lambda i, m: seen.append(1) or (i, m)
    )
    img, _ = ds_t[1]
    assert seen == [1] and img.shape == (48, 48, 3)
    assert ds_t.scenes == ["masonry", "masonry"]


def test_dataset_bad_arguments() -> None:
    with pytest.raises(ValueError):
        HardNegativeDataset(0)
    with pytest.raises(ValueError):
        HardNegativeDataset(3, scene="beach")
    with pytest.raises(ValueError):
        HardNegativeDataset(3, crack_p=-0.1)


def test_hardneg_spec_builds_a_dataset_with_split_specific_seeds():
    from crackseg.data.datasets import DatasetError, build_dataset

    train = build_dataset(["hardneg:3:64"], split="train")
    test = build_dataset(["hardneg:3:64:masonry"], split="test")
    assert len(train) == 3 and train.sample(0)[0].shape == (64, 64, 3)
    assert not np.array_equal(train.sample(0)[0], test.sample(0)[0])
    with pytest.raises(DatasetError, match="hardneg:N"):
        build_dataset(["hardneg:many"], split="train")
