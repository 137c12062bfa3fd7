"""Folder pairing, presets, specs, validation of bad input, and the real datasets."""

from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from crackseg.data.datasets import (
    DATASET_KINDS,
    ConcatCrackDataset,
    DatasetError,
    PairedFolderDataset,
    build_dataset,
    carnet_set,
    crack500,
    crackforest,
    deepcrack,
    parse_dataset_spec,
    split_train_val,
)

RNG = np.random.default_rng(0)


def _img(path: Path, w=20, h=16):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _mask(path: Path, w=20, h=16):
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((h, w), np.uint8)
    m[h // 2, :] = 255
    if path.suffix == ".mat":
        seg = np.where(m > 0, 2, 1).astype(np.uint8)
        savemat(path, {"groundTruth": {"Segmentation": seg}})
    else:
        Image.fromarray(m).save(path)
    return path


def _folder(root: Path, stems, img_ext=".jpg", mask_ext=".png", suffix="", size=(20, 16)):
    for s in stems:
        _img(root / "images" / f"{s}{img_ext}", *size)
        _mask(root / "masks" / f"{s}{suffix}{mask_ext}", *size)
    return root / "images", root / "masks"


# ---------------------------------------------------------------- pairing and access


def test_paired_folder_basic(tmp_path):
    images, masks = _folder(tmp_path, ["b", "a", "c"])
    ds = PairedFolderDataset(images, masks)
    assert len(ds) == 3 and ds.names == ["a", "b", "c"]
    assert ds.pairs[0] == (images / "a.jpg", masks / "a.png")
    x, y = ds[0]
    assert x.dtype == torch.float32 and x.shape == (3, 16, 20)
    assert y.dtype == torch.float32 and y.shape == (1, 16, 20)
    assert set(y.unique().tolist()) == {0.0, 1.0}
    img, m = ds.sample(1)
    assert img.dtype == np.uint8 and img.shape == (16, 20, 3)
    assert m.dtype == np.bool_ and m.shape == (16, 20) and m[8].all()
    assert ds[-1][0].shape == (3, 16, 20)
    with pytest.raises(IndexError):
        ds[3]


def test_transform_receives_raw_arrays(tmp_path):
    images, masks = _folder(tmp_path, ["a"])
    seen = {}

    def transform(image, mask):
        seen["types"] = (image.dtype, image.shape, mask.dtype, mask.shape)
        return "x", "y"

    assert PairedFolderDataset(images, masks, transform=transform)[0] == ("x", "y")
    assert seen["types"] == (np.uint8, (16, 20, 3), np.bool_, (16, 20))


def test_suffix_case_insensitive_extensions_and_hidden_files(tmp_path):
    images, masks = _folder(tmp_path, ["a", "b"], img_ext=".JPG", mask_ext=".PNG", suffix="_mask")
    (images / "._a.JPG").write_bytes(b"\x00\x05AppleDouble")  # macOS companion file
    ds = PairedFolderDataset(images, masks, mask_suffix="_mask")
    assert ds.names == ["a", "b"]
    assert ds.pairs[1][1].name == "b_mask.PNG"


def test_mat_masks_and_mixed_extensions(tmp_path):
    _img(tmp_path / "i" / "a.png")
    _img(tmp_path / "i" / "b.tif")
    _mask(tmp_path / "m" / "a.mat")
    _mask(tmp_path / "m" / "b.bmp")
    ds = PairedFolderDataset(tmp_path / "i", tmp_path / "m")
    assert ds.names == ["a", "b"]
    assert ds.sample(0)[1][8].all() and ds.sample(0)[1].sum() == 20


def test_same_folder_layouts(tmp_path):
    d = tmp_path / "mixed"
    _img(d / "a.jpg")
    _mask(d / "a_mask.png")
    ds = PairedFolderDataset(d, d, mask_suffix="_mask")
    assert ds.names == ["a"] and ds.pairs[0][1].name == "a_mask.png"
    d2 = tmp_path / "crack500_original"  # x.jpg beside x.png
    _img(d2 / "a.jpg")
    _mask(d2 / "a.png")
    ds2 = PairedFolderDataset(d2, d2)
    assert ds2.pairs == [(d2 / "a.jpg", d2 / "a.png")]


# ---------------------------------------------------------------- folder errors


def test_missing_folder_names_it_and_suggests(tmp_path):
    images, masks = _folder(tmp_path, ["a"])
    with pytest.raises(DatasetError, match="does not exist") as info:
        PairedFolderDataset(tmp_path / "imagess", masks)
    assert "imagess" in str(info.value) and "Did you mean" in str(info.value)
    with pytest.raises(DatasetError, match="masks folder"):
        PairedFolderDataset(images, tmp_path / "nothing")


def test_empty_folder(tmp_path):
    (tmp_path / "images" / "sub").mkdir(parents=True)
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetError, match="no images") as info:
        PairedFolderDataset(tmp_path / "images", tmp_path / "masks")
    assert str(tmp_path / "images") in str(info.value) and "sub" in str(info.value)


def test_image_without_mask(tmp_path):
    images, masks = _folder(tmp_path, ["a", "b"])
    for s in ["x1", "x2", "x3", "x4", "x5", "x6"]:
        _img(images / f"{s}.jpg")
    with pytest.raises(DatasetError, match="6 of 8 images") as info:
        PairedFolderDataset(images, masks)
    msg = str(info.value)
    assert "x1.jpg" in msg and "x5.jpg" in msg and "x6.jpg" not in msg  # lists up to 5
    assert "mask suffix" in msg and "--skip-bad" in msg
    with pytest.warns(UserWarning, match="no mask"):
        ds = PairedFolderDataset(images, masks, skip_bad=True)
    assert len(ds) == 2 and len(ds.skipped) == 6


def test_wrong_suffix_hint(tmp_path):
    images, masks = _folder(tmp_path, ["a"], suffix="_mask")
    with pytest.raises(DatasetError, match="a_mask.png"):
        PairedFolderDataset(images, masks)  # the message shows what the masks look like


def test_masks_without_images_warn(tmp_path):
    images, masks = _folder(tmp_path, ["a"])
    _mask(masks / "orphan1.png")
    _mask(masks / "orphan2.png")
    with pytest.warns(UserWarning, match="2 mask"):
        ds = PairedFolderDataset(images, masks)
    assert len(ds) == 1


# ---------------------------------------------------------------- bad pairs


def test_size_mismatch_lazy_validate_and_skip(tmp_path):
    images, masks = _folder(tmp_path, ["a", "c"], size=(640, 360))
    _img(images / "b.jpg", 640, 360)
    _mask(masks / "b.png", 544, 384)
    ds = PairedFolderDataset(images, masks)  # construction does not decode anything
    assert len(ds) == 3
    ds[0]
    with pytest.raises(DatasetError) as info:
        ds[1]
    msg = str(info.value)
    assert f"{masks / 'b.png'} is 544x384 but {images / 'b.jpg'}" in msg
    assert "masks must have the image's size" in msg
    problems = ds.validate(progress=False)
    assert len(problems) == 1 and problems[0].index == 1
    expected = (
        f"{masks / 'b.png'} is 544x384 but {images / 'b.jpg'} is 640x360: "
        "masks must have the image's size"
    )
    assert str(problems[0]) == expected
    with pytest.warns(UserWarning, match="skipped 1 bad pair"):
        good = PairedFolderDataset(images, masks, skip_bad=True)
    assert good.names == ["a", "c"] and len(good.skipped) == 1
    assert good.skipped[0].image == images / "b.jpg"


def test_corrupt_jpeg(tmp_path):
    images, masks = _folder(tmp_path, ["a", "b"])
    (images / "b.jpg").write_bytes(RNG.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    ds = PairedFolderDataset(images, masks)
    with pytest.raises(DatasetError, match="b.jpg") as info:
        ds[1]
    assert "skip_bad" in str(info.value)
    problems = ds.validate(progress=True)
    assert [p.index for p in problems] == [1] and "b.jpg" in str(problems[0])
    with pytest.warns(UserWarning, match="skipped 1"):
        ds2 = PairedFolderDataset(images, masks, skip_bad=True)
    assert ds2.names == ["a"] and len(ds2.skipped) == 1


def test_truncated_image_found_by_full_validation(tmp_path):
    images, masks = _folder(tmp_path, ["a"], size=(64, 64))
    data = (images / "a.jpg").read_bytes()
    (images / "a.jpg").write_bytes(data[: len(data) // 2])
    ds = PairedFolderDataset(images, masks)
    assert ds.validate(progress=False) == []
    assert len(ds.validate(progress=False, full=True)) == 1


def test_skip_bad_decodes_fully_and_lists_what_it_skipped(tmp_path):
    """A truncated JPEG has a good header: skip_bad must decode it to find it (it used to read
    headers only, and the run then stopped at the file)."""
    from crackseg.data.datasets import build_dataset, skipped_pairs

    images, masks = _folder(tmp_path, ["a", "b", "c"], size=(64, 64))
    data = (images / "b.jpg").read_bytes()
    (images / "b.jpg").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="skipped 1 bad pair.*b.jpg"):
        ds = build_dataset(f"folder:{images}:{masks}", skip_bad=True)
    assert ds.names == ["a", "c"]
    for i in range(len(ds)):
        ds.sample(i)  # everything left decodes
    (skipped,) = skipped_pairs(ds)
    assert skipped["name"] == "b" and skipped["image"].endswith("b.jpg")
    assert "truncated" in skipped["reason"]


def test_all_bad_with_skip_is_an_error(tmp_path):
    images, masks = _folder(tmp_path, ["a"])
    (masks / "a.png").write_bytes(b"junk")
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="every pair"):
        PairedFolderDataset(images, masks, skip_bad=True)


# ---------------------------------------------------------------- presets


def _split_layout(root: Path, split: str, stems, suffix=""):
    for s in stems:
        _img(root / f"{split}_img" / f"{s}.jpg")
        _mask(root / f"{split}_lab" / f"{s}{suffix}.png")


def test_deepcrack_and_crack500_layouts(tmp_path):
    _split_layout(tmp_path / "dc", "train", ["1", "2", "3"])
    _split_layout(tmp_path / "dc", "test", ["4"])
    assert len(deepcrack(tmp_path / "dc", "train")) == 3
    assert deepcrack(tmp_path / "dc", "test").names == ["4"]
    _split_layout(tmp_path / "c5", "train", ["x", "y"], suffix="_mask")
    assert crack500(tmp_path / "c5", "train").names == ["x", "y"]


def test_preset_pointed_at_split_folder_or_parent(tmp_path):
    _split_layout(tmp_path / "deepcrack", "train", ["1"])
    with pytest.raises(DatasetError, match="split folder"):
        deepcrack(tmp_path / "deepcrack" / "train_img", "train")
    with pytest.raises(DatasetError, match="Did you mean"):
        deepcrack(tmp_path, "train")
    with pytest.raises(DatasetError, match="Splits present: train"):
        deepcrack(tmp_path / "deepcrack", "test")
    with pytest.raises(DatasetError, match="does not exist"):
        deepcrack(tmp_path / "nowhere", "train")


def test_crackforest_and_carnet(tmp_path):
    for s in ["001", "002"]:
        _img(tmp_path / "CFD" / "image" / f"{s}.jpg")
        _mask(tmp_path / "CFD" / "groundTruth" / f"{s}.mat")
        _img(tmp_path / "Sun520" / "img" / f"{s}.jpg")
        _mask(tmp_path / "Sun520" / "gt" / f"{s}.png")
    cfd = crackforest(tmp_path / "CFD")
    assert len(cfd) == 2 and cfd.sample(0)[1].sum() == 20
    assert len(carnet_set(tmp_path / "Sun520")) == 2
    with pytest.warns(UserWarning, match="train and test are the same images"):
        crackforest(tmp_path / "CFD", "test")
    # a user-made split folder is used when present
    _img(tmp_path / "CFD" / "test" / "image" / "009.jpg")
    _mask(tmp_path / "CFD" / "test" / "groundTruth" / "009.mat")
    assert crackforest(tmp_path / "CFD", "test").names == ["009"]
    with pytest.raises(DatasetError, match="img/ and gt/"):
        carnet_set(tmp_path / "CFD")


# ---------------------------------------------------------------- specs


def test_parse_specs(tmp_path):
    _split_layout(tmp_path / "dc", "test", ["1", "2"])
    _split_layout(tmp_path / "c5", "train", ["x"], suffix="_mask")
    _img(tmp_path / "Sun520" / "img" / "s.jpg")
    _mask(tmp_path / "Sun520" / "gt" / "s.png")
    _img(tmp_path / "CFD" / "image" / "c.jpg")
    _mask(tmp_path / "CFD" / "groundTruth" / "c.mat")
    assert len(parse_dataset_spec(f"deepcrack:{tmp_path / 'dc'}", "test")) == 2
    assert len(parse_dataset_spec(f"crack500:{tmp_path / 'c5'}")) == 1
    assert len(parse_dataset_spec(f"crackforest:{tmp_path / 'CFD'}", split="all")) == 1
    assert len(parse_dataset_spec(f"CFD:{tmp_path / 'CFD'}", split="all")) == 1
    for kind in ("carnet", "sun520", "Rain365", "bjn260"):
        assert len(parse_dataset_spec(f"{kind}:{tmp_path / 'Sun520'}", split="all")) == 1


def test_parse_folder_spec_with_suffix_and_split(tmp_path):
    for split in ("train", "test"):
        _img(tmp_path / split / "im" / f"{split}.jpg")
        _mask(tmp_path / split / "gt" / f"{split}_mask.png")
    spec = f"folder:{tmp_path}/{{split}}/im:{tmp_path}/{{split}}/gt:_mask"
    assert parse_dataset_spec(spec, "train").names == ["train"]
    assert parse_dataset_spec(spec, "test").names == ["test"]
    with pytest.raises(DatasetError, match="folder:IMAGES:MASKS"):
        parse_dataset_spec(f"folder:{tmp_path}")


def test_path_with_colon(tmp_path):
    root = tmp_path / "odd:name"
    _split_layout(root, "train", ["1"])
    assert len(parse_dataset_spec(f"deepcrack:{root}")) == 1


def test_unknown_or_malformed_spec_lists_kinds():
    with pytest.raises(DatasetError) as info:
        parse_dataset_spec("imagenet:/data")
    for kind in DATASET_KINDS:
        assert f"{kind}:" in str(info.value)
    with pytest.raises(DatasetError, match="no kind"):
        parse_dataset_spec("/data/deepcrack")
    with pytest.raises(DatasetError, match="nothing after"):
        parse_dataset_spec("deepcrack:")
    with pytest.raises(DatasetError, match="synth:N"):
        parse_dataset_spec("synth:many")


def test_synth_spec_seeds_differ_between_splits(monkeypatch):
    calls = []

    class FakeSynth:
        def __init__(self, n, size=256, condition="all", seed=0, transform=None):
            calls.append((n, size, condition, seed))
            self.n = n

        def __len__(self):
            return self.n

    fake = types.ModuleType("crackseg.data.synth")
    fake.SynthCrackDataset = FakeSynth
    monkeypatch.setitem(sys.modules, "crackseg.data.synth", fake)
    parse_dataset_spec("synth:10", "train")
    parse_dataset_spec("synth:5:64:night", "test")
    assert calls[0] == (10, 256, "all", 0)
    assert calls[1][:3] == (5, 64, "night") and calls[1][3] != 0


def test_synth_spec_with_real_generator():
    pytest.importorskip("crackseg.data.synth")
    train = parse_dataset_spec("synth:2:128", "train")
    test = parse_dataset_spec("synth:2:128", "test")
    assert len(train) == 2 and len(test) == 2
    x, y = train[0]
    assert tuple(x.shape[-2:]) == (128, 128) and tuple(y.shape[-2:]) == (128, 128)
    assert not np.array_equal(train.sample(0)[0], test.sample(0)[0])


def test_build_dataset_concatenates(tmp_path):
    _split_layout(tmp_path / "dc", "train", ["1", "2"])
    _split_layout(tmp_path / "c5", "train", ["x"], suffix="_mask")
    ds = build_dataset([f"deepcrack:{tmp_path / 'dc'}", f"crack500:{tmp_path / 'c5'}"], "train")
    assert isinstance(ds, ConcatCrackDataset) and len(ds) == 3
    assert ds.names == ["1", "2", "x"]
    assert ds.pairs[2][1].name == "x_mask.png"
    assert ds.sample(2)[0].shape == (16, 20, 3) and ds[-1][1].shape == (1, 16, 20)
    assert len(build_dataset(f"deepcrack:{tmp_path / 'dc'}")) == 2
    with pytest.raises(DatasetError, match="no dataset"):
        build_dataset([])


# ---------------------------------------------------------------- train/val split


def test_split_train_val_deterministic_disjoint():
    tr, va = split_train_val(100, 0.1, seed=3)
    assert len(va) == 10 and len(tr) == 90
    assert sorted(tr + va) == list(range(100)) and not set(tr) & set(va)
    assert (tr, va) == split_train_val(100, 0.1, seed=3)
    assert va != split_train_val(100, 0.1, seed=4)[1]
    assert split_train_val(5, 0.0) == ([0, 1, 2, 3, 4], [])
    assert len(split_train_val(3, 0.01)[1]) == 1  # at least one for validation
    assert split_train_val(1, 0.5) == ([0], [])
    with pytest.raises(ValueError):
        split_train_val(10, 1.0)


def test_split_train_val_groups():
    class Named:
        names = ["11116", "11116-1", "11116-2", "11117", "11118-1", "11118-2", "11119", "11120"]

        def __len__(self):
            return len(self.names)

    ds = Named()
    for seed in range(10):
        tr, va = split_train_val(ds, 0.25, seed=seed, group_fn=lambda n: n.split("-")[0])
        groups_tr = {ds.names[i].split("-")[0] for i in tr}
        groups_va = {ds.names[i].split("-")[0] for i in va}
        assert va and tr and not groups_tr & groups_va


# ---------------------------------------------------------------- the real datasets


def test_real_pair_counts(shared_data):
    counts = {
        ("deepcrack", "train"): 300,
        ("deepcrack", "test"): 237,
        ("crack500", "train"): 286,
        ("crack500", "test"): 93,
    }
    for (name, split), n in counts.items():
        ds = parse_dataset_spec(f"{name}:{shared_data / name}", split)
        assert len(ds) == n, (name, split)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no orphan masks, no duplicate stems
        crack500(shared_data / "crack500", "test")


def test_real_items_and_headers(shared_data):
    dc = deepcrack(shared_data / "deepcrack", "test")
    c5 = crack500(shared_data / "crack500", "test")
    assert c5.validate(progress=False) == []
    for ds, (h, w) in ((dc, (384, 544)), (c5, (360, 640))):
        for i in (0, len(ds) // 2, len(ds) - 1):
            x, y = ds[i]
            assert x.shape == (3, h, w) and y.shape == (1, h, w)
            assert 0 < y.mean() < 0.25
    assert c5.pairs[0][1].name == c5.names[0] + "_mask.png"
