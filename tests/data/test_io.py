"""Reading images and masks: formats, the binarisation rule, CrackForest .mat, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import loadmat, savemat

from crackseg.data.io import (
    MEAN,
    STD,
    ImageReadError,
    binarize_mask,
    image_size,
    mask_to_tensor,
    read_image,
    read_mask,
    read_mat_mask,
    to_tensor,
)

RNG = np.random.default_rng(0)


def _rgb(h=24, w=32):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- unchanged public helpers


def test_to_tensor_and_mask_to_tensor_contract():
    img = _rgb()
    x = to_tensor(img)
    assert x.dtype == torch.float32 and x.shape == (3, 24, 32)
    back = x * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    assert torch.allclose(back * 255, torch.from_numpy(img).permute(2, 0, 1).float(), atol=1e-3)
    m = mask_to_tensor(np.eye(4, dtype=bool))
    assert m.shape == (1, 4, 4) and set(m.unique().tolist()) == {0.0, 1.0}


# ---------------------------------------------------------------- read_image


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".tiff"])
def test_read_image_lossless_formats_roundtrip(tmp_path, ext):
    img = _rgb()
    p = tmp_path / f"a{ext}"
    Image.fromarray(img).save(p)
    out = read_image(p)
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
    np.testing.assert_array_equal(out, img)
    assert out.flags.writeable


def test_read_image_jpeg_uppercase_extension(tmp_path):
    p = tmp_path / "a.JPG"
    Image.fromarray(_rgb()).save(p, format="JPEG")
    assert read_image(p).shape == (24, 32, 3)


def test_read_image_grey_becomes_three_equal_channels(tmp_path):
    grey = RNG.integers(0, 256, (10, 12), dtype=np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (10, 12, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_read_image_rgba_drops_alpha(tmp_path):
    rgba = np.dstack([_rgb(8, 8), np.full((8, 8), 7, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgba[:, :, :3])


def test_read_image_palette_and_1bit(tmp_path):
    img = Image.fromarray(_rgb(8, 8)).convert("P")
    img.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), np.asarray(img.convert("RGB")))
    Image.fromarray(np.eye(6, dtype=bool)).save(tmp_path / "one.png")
    out = read_image(tmp_path / "one.png")
    assert out.shape == (6, 6, 3) and set(np.unique(out)) == {0, 255}


def test_read_image_16bit_scaled_by_257(tmp_path):
    a = np.array([[0, 257, 65535], [32896, 1000, 65535]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "d.png")
    out = read_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[:, :, 0], np.rint(a / 257.0).astype(np.uint8))


def test_read_image_12bit_in_16bit_container_scaled_by_bit_depth(tmp_path):
    a = np.array([[0, 4095, 2048]], dtype=np.uint16)  # 12-bit camera data
    Image.fromarray(a).save(tmp_path / "d12.png")
    out = read_image(tmp_path / "d12.png")[:, :, 0]
    np.testing.assert_array_equal(out, [[0, 255, 128]])


def test_read_image_applies_exif_orientation(tmp_path):
    img = Image.fromarray(_rgb(20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    p = tmp_path / "phone.jpg"
    img.save(p, exif=exif)
    assert read_image(p).shape == (40, 20, 3)
    assert image_size(p) == (20, 40)  # (width, height) as displayed


def test_read_image_errors_name_the_file(tmp_path):
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(RNG.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match="corrupt.jpg") as info:
        read_image(bad)
    assert isinstance(info.value, ValueError)
    assert "re-download" in str(info.value)
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)
    with pytest.raises(ImageReadError, match="corrupt.jpg"):
        image_size(bad)


def test_read_image_truncated_jpeg(tmp_path):
    p = tmp_path / "t.jpg"
    Image.fromarray(_rgb(64, 64)).save(p, quality=95)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    assert image_size(p) == (64, 64)  # the header is intact...
    with pytest.raises(ImageReadError, match="t.jpg"):
        read_image(p)  # ...the pixels are not


# ---------------------------------------------------------------- the binarisation rule


def test_binarize_mask_rule():
    np.testing.assert_array_equal(binarize_mask(np.array([[0, 1]], np.uint8)), [[False, True]])
    np.testing.assert_array_equal(
        binarize_mask(np.array([[0, 5, 127, 128, 250, 255]], np.uint8)),
        [[False, False, False, True, True, True]],
    )
    assert binarize_mask(np.zeros((3, 3), np.uint8)).sum() == 0
    b = np.array([[True, False]])
    np.testing.assert_array_equal(binarize_mask(b), b)
    # floats in [0, 1] are fractions: cut at 0.5; binary floats behave like > 0
    np.testing.assert_array_equal(
        binarize_mask(np.array([[0.0, 0.3, 0.5, 1.0]])), [[False, False, True, True]]
    )
    # 16-bit: {0, 65535} and a near-binary 16-bit mask
    np.testing.assert_array_equal(
        binarize_mask(np.array([[0, 65535, 30000, 40000]], np.uint16)),
        [[False, True, False, True]],
    )
    # {0, 1} and {0, 255} stored in 16 bits
    np.testing.assert_array_equal(binarize_mask(np.array([[0, 1]], np.uint16)), [[False, True]])
    np.testing.assert_array_equal(binarize_mask(np.array([[0, 255]], np.int32)), [[False, True]])


def test_binarize_mask_colour_uses_channel_max():
    a = np.zeros((2, 2, 3), np.uint8)
    a[0, 0] = (255, 0, 0)  # a red crack: luminance would be 76
    a[1, 1] = (0, 0, 100)  # dim blue: below the cut
    np.testing.assert_array_equal(binarize_mask(a), [[True, False], [False, False]])
    with pytest.raises(ValueError):
        binarize_mask(np.zeros((2, 2, 2, 2)))


def _save(tmp_path, name, arr, mode=None):
    p = tmp_path / name
    Image.fromarray(arr, mode=mode).save(p)
    return p


def test_read_mask_8bit_1bit_and_01(tmp_path):
    m = np.zeros((6, 8), bool)
    m[2:4, 1:7] = True
    for arr, name in [
        (m.astype(np.uint8) * 255, "a.png"),
        (m.astype(np.uint8), "b.png"),  # {0, 1} grey
        (m, "c.png"),  # mode "1"
        (m.astype(np.uint8) * 255, "d.bmp"),
    ]:
        out = read_mask(_save(tmp_path, name, arr))
        assert out.dtype == np.bool_ and out.shape == (6, 8)
        np.testing.assert_array_equal(out, m, err_msg=name)
    assert Image.open(tmp_path / "c.png").mode == "1"


def test_read_mask_rgb_near_binary_like_crack500(tmp_path):
    m = np.zeros((6, 8), bool)
    m[:, 3:5] = True
    grey = np.where(m, 252, 3).astype(np.uint8)
    grey[0, 2] = 100  # a smoothed edge below the cut
    grey[0, 5] = 200  # above the cut
    out = read_mask(_save(tmp_path, "m.png", np.dstack([grey] * 3)))
    expected = m.copy()
    expected[0, 5] = True
    np.testing.assert_array_equal(out, expected)


def test_read_mask_jpeg_artefacts(tmp_path):
    m = np.zeros((32, 32), bool)
    m[8:24, 12:20] = True
    p = tmp_path / "m.jpg"
    Image.fromarray(m.astype(np.uint8) * 255).save(p, quality=75)
    assert (read_mask(p) != m).mean() < 0.02


def test_read_mask_palette_grey_and_label_map(tmp_path):
    m = np.zeros((4, 5), np.uint8)
    m[1, 1:4] = 1
    # label map: index 1 = dark red, index 0 = white background -> the index is the class
    im = Image.fromarray(m, mode="P")
    im.putpalette([255, 255, 255, 128, 0, 0] + [0, 0, 0] * 254)
    im.save(tmp_path / "label.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "label.png"), m > 0)
    # a grey image stored with a palette whose entry 0 is white: the grey value decides
    im = Image.fromarray(m, mode="P")
    im.putpalette([255, 255, 255, 0, 0, 0] + [0, 0, 0] * 254)
    im.save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "grey.png"), m == 0)


def test_read_mask_16bit_and_alpha_only(tmp_path):
    m = np.zeros((4, 4), bool)
    m[1:3, 2] = True
    out = read_mask(_save(tmp_path, "w.png", (m * 65535).astype(np.uint16)))
    np.testing.assert_array_equal(out, m)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = m * 255  # drawn only in alpha over a flat black layer
    np.testing.assert_array_equal(read_mask(_save(tmp_path, "a.png", rgba, "RGBA")), m)


def test_read_mask_errors(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match="bad.png"):
        read_mask(bad)
    with pytest.raises(ImageReadError, match="does not exist"):
        read_mask(tmp_path / "missing.png")


# ---------------------------------------------------------------- CrackForest .mat


def _cfd_seg():
    seg = np.ones((6, 9), np.uint16)  # 1 = background
    seg[3, 1:8] = 2  # 2 = crack
    return seg


def test_read_mat_mask_nested_cfd_struct(tmp_path):
    seg = _cfd_seg()
    p = tmp_path / "001.mat"
    savemat(p, {"groundTruth": {"Segmentation": seg, "Boundaries": (seg == 2).astype(np.uint8)}})
    # the structure as CFD has it
    raw = loadmat(p)["groundTruth"][0][0]["Segmentation"]
    np.testing.assert_array_equal(raw, seg)
    out = read_mat_mask(p)
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, seg == 2)
    np.testing.assert_array_equal(read_mask(p), seg == 2)  # read_mask delegates .mat
    assert image_size(p) == (9, 6)


def test_read_mat_mask_flat_and_cell_variants(tmp_path):
    seg = _cfd_seg()
    savemat(tmp_path / "flat.mat", {"Segmentation": seg})
    np.testing.assert_array_equal(read_mat_mask(tmp_path / "flat.mat"), seg == 2)
    savemat(tmp_path / "gt.mat", {"groundTruth": seg.astype(np.float64)})
    np.testing.assert_array_equal(read_mat_mask(tmp_path / "gt.mat"), seg == 2)
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = {"Segmentation": seg}
    savemat(tmp_path / "cell.mat", {"groundTruth": cell})
    np.testing.assert_array_equal(read_mat_mask(tmp_path / "cell.mat"), seg == 2)
    # a {0, 255} array in a .mat goes through the general rule
    savemat(tmp_path / "bin.mat", {"Segmentation": (seg == 2).astype(np.uint8) * 255})
    np.testing.assert_array_equal(read_mat_mask(tmp_path / "bin.mat"), seg == 2)


def test_read_mat_mask_errors(tmp_path):
    savemat(tmp_path / "other.mat", {"foo": np.ones((1, 1)), "bar": np.ones((1, 1))})
    with pytest.raises(ImageReadError, match="Segmentation"):
        read_mat_mask(tmp_path / "other.mat")
    (tmp_path / "junk.mat").write_bytes(b"\x00garbage" * 20)
    with pytest.raises(ImageReadError, match="junk.mat"):
        read_mat_mask(tmp_path / "junk.mat")
    with pytest.raises(ImageReadError, match="does not exist"):
        read_mat_mask(tmp_path / "none.mat")


# ---------------------------------------------------------------- the real datasets


def test_deepcrack_1bit_and_8bit_test_masks(shared_data):
    lab = shared_data / "deepcrack" / "test_lab"
    files = sorted(lab.glob("*.png"))
    modes = {}
    for f in files:
        with Image.open(f) as im:
            modes.setdefault(im.mode, []).append(f)
    assert len(modes["1"]) == 47 and len(modes["L"]) == 190
    for f in modes["1"]:
        m = read_mask(f)
        assert m.shape == (384, 544) and 0 < m.mean() < 0.3, f
    for f in modes["L"][:5]:
        raw = np.asarray(Image.open(f))
        assert set(np.unique(raw)) <= {0, 255}
        np.testing.assert_array_equal(read_mask(f), raw > 0)


def test_crack500_rgb_masks_binarise_plausibly(shared_data):
    lab = shared_data / "crack500" / "train_lab"
    files = sorted(lab.glob("*_mask.png"))[:6]
    saw_soft_edges = False
    for f in files:
        raw = np.asarray(Image.open(f))
        assert raw.ndim == 3 and raw.shape == (360, 640, 3)
        saw_soft_edges |= bool(((raw > 5) & (raw < 250)).any())
        m = read_mask(f)
        assert 0 < m.mean() < 0.2, f
        np.testing.assert_array_equal(m, raw.max(axis=2) > 127)
    assert saw_soft_edges  # resizing left intermediate values: the > 127 cut matters


# ---------------------------------------------------------------- uploads (bytes in memory)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "I;16", "P"])
def test_decode_image_reads_bytes_exactly_as_read_image_reads_the_file(tmp_path, mode):
    from crackseg.data.io import decode_image

    rgb = _rgb(20, 30)
    if mode == "I;16":
        im = Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257)
    else:
        im = Image.fromarray(rgb).convert(mode)
    exif = im.getexif()
    exif[0x0112] = 6  # rotated: both must apply it
    path = tmp_path / "x.png"
    im.save(path, exif=exif)
    got = decode_image(path.read_bytes())
    assert got.shape == (30, 20, 3)
    np.testing.assert_array_equal(got, read_image(path))


def test_decode_image_limits_and_errors():
    import io

    from crackseg.data.io import ImageTooLargeError, decode_image

    buf = io.BytesIO()
    Image.new("L", (300, 200)).save(buf, "PNG")
    with pytest.raises(ImageTooLargeError, match="300x200 = 60,000 pixels.*50,000 allowed"):
        decode_image(buf.getvalue(), "upload 'big.png'", max_pixels=50_000)
    assert decode_image(buf.getvalue(), max_pixels=60_000).shape == (200, 300, 3)
    with pytest.raises(ImageReadError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageReadError, match=r"'g.bin' could not be read .*file\): send a JPEG"):
        decode_image(b"garbage" * 20, "'g.bin'")
    gif = io.BytesIO()
    Image.new("P", (8, 8)).save(gif, "GIF")
    with pytest.raises(ImageReadError, match="could not be read"):
        decode_image(gif.getvalue())  # not a photo format: Pillow is not asked to try it
    assert decode_image(gif.getvalue(), formats=None).shape == (8, 8, 3)
