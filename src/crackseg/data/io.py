"""The one place that decides how images and masks become arrays and tensors.

Every loader, the demo, prediction and the service go through these functions, so an image is
read, oriented, converted and normalised the same way everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from crackseg.errors import CrackSegError

if TYPE_CHECKING:  # torch is imported where tensors are made: reading images needs only Pillow
    import torch

# Inputs are normalised with the ImageNet statistics: a fixed, widely used convention (the models
# are trained from scratch, so any fixed choice works; this one lets timm/torchvision encoders fit).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """Convert an ``(H, W, 3)`` uint8 RGB array to a normalised float32 ``(3, H, W)`` tensor."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {tuple(image.shape)}")
    import torch

    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (x - mean) / std


def mask_to_tensor(mask: np.ndarray) -> torch.Tensor:
    """Convert an ``(H, W)`` binary mask (bool or {0, 1}) to a float32 ``(1, H, W)`` tensor."""
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {tuple(mask.shape)}")
    import torch

    return torch.from_numpy(np.ascontiguousarray(mask > 0)).float().unsqueeze(0)


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------

#: File extensions read as images (compared case-insensitively).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: File extensions read as masks: any image extension, plus CrackForest's MATLAB ``.mat``.
MASK_EXTENSIONS = (*IMAGE_EXTENSIONS, ".mat")

# EXIF orientations 5..8 are transposes: width and height swap once applied.
_EXIF_ORIENTATION = 0x0112
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
# 8-bit modes that Pillow converts to RGB without losing anything read_image keeps.
_TO_RGB_MODES = frozenset("L 1 P PA LA La RGBA RGBa RGBX CMYK YCbCr LAB HSV".split())


class ImageReadError(CrackSegError):
    """A file could not be read as an image or a mask; the message names the file and a fix."""


def open_image(path: str | os.PathLike, what: str = "image") -> Image.Image:
    """Open and fully decode ``path`` with PIL, EXIF orientation applied: the one file reader
    behind :func:`read_image` and :func:`read_mask`, for callers that need the decoded mode
    (probability maps). Every failure, Pillow's decompression-bomb guard
    (``PIL.Image.MAX_IMAGE_PIXELS``) included, is an :class:`ImageReadError` naming ``what`` and
    the file."""
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{what} {p} does not exist: check the path (and the working folder)")
    if p.is_dir():
        raise ImageReadError(f"{what} {p} is a folder, not a file: point at an image file")
    fix = (
        "the file is corrupt, truncated or not an image; re-download or re-export it "
        "(PNG/JPEG/TIFF/BMP), or remove it from the folder (or skip bad files with --skip-bad / "
        "--set skip_bad=true)"
    )
    big = "split it into tiles, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
    return _decode(p, f"{what} {p}", fix, big)


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than allowed (a limit, or Pillow's decompression-bomb guard)."""


def _decode(
    source,
    label: str,
    fix: str,
    big: str,
    max_pixels: int | None = None,
    formats: tuple[str, ...] | None = None,
) -> Image.Image:
    """Decode ``source`` (a path or a binary file) fully; every failure is an ImageReadError.

    ``max_pixels`` is checked on the header's size, before any pixel is decoded; Pillow's own
    decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``) stays in force either way.
    """
    try:
        im = Image.open(source, formats=formats)
        if max_pixels is not None and im.width * im.height > max_pixels:
            raise ImageTooLargeError(
                f"{label} has {im.width}x{im.height} = {im.width * im.height:,} pixels, more "
                f"than the {max_pixels:,} allowed: {big}"
            )
        im.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"{label} is too large for Pillow's safety limit ({exc}): {big}"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, ImageReadError):
            raise
        # UnidentifiedImageError is an OSError; truncated files raise OSError on load().
        why = str(exc)
        if not isinstance(source, str | os.PathLike):  # not "<_io.BytesIO object at 0x...>"
            why = why.replace(f" {source!r}", "").replace(repr(source), "the data")
        raise ImageReadError(
            f"{label} could not be read ({type(exc).__name__}: {why}): {fix}"
        ) from None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a malformed EXIF block must not make a photo unreadable
        pass
    return im


def _bit_depth_to_uint8(a: np.ndarray) -> np.ndarray:
    """Bring a wide integer or float array to uint8 by its *bit depth* (not its contrast).

    * uint8 / bool: unchanged (bool becomes 0/255).
    * wider integers: negatives clip to 0; the bit depth is ``ceil(log2(max + 1))``; if it is 8
      or less the values already fit (8-bit data in a 16-bit container) and are kept, otherwise
      they are divided by ``(2**bits - 1) / 255``: true 16-bit data by 257, 12-bit camera data
      (max < 4096) by 4095/255, 10-bit by 1023/255. The scale follows the number of bits the
      values need, not their exact maximum, so exposure differences between images mostly
      survive (no per-image contrast stretch). Caveat: a true 16-bit image darker than 1/16
      of full scale is indistinguishable from 12-bit data and comes out 16x brighter.
    * floats: values in [0, 1] are scaled by 255, larger values are clipped to [0, 255].
    """
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    a = np.clip(a.astype(np.int64), 0, None)
    top = int(a.max()) if a.size else 0
    bits = max(8, int(np.ceil(np.log2(top + 1))) if top > 0 else 8)
    if bits <= 8:
        return a.astype(np.uint8)
    scale = (2**bits - 1) / 255.0
    return np.clip(np.rint(a / scale), 0, 255).astype(np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a photo as an ``(H, W, 3)`` uint8 RGB array.

    Accepts JPEG, PNG, TIFF, BMP (anything Pillow decodes). The EXIF orientation is applied, so
    a phone photo comes out the way it is displayed. Conversions:

    * grey (``L``, ``1``, 16-bit ``I;16``/``I``, float ``F``) is repeated over 3 channels;
    * 16-bit (or 10/12-bit in a 16-bit container) is reduced to 8 bits by its bit depth
      (``/257`` for full 16-bit data), see :func:`_bit_depth_to_uint8`;
    * alpha (``RGBA``, ``LA``, ``PA``) is dropped: the colour values are kept as they are;
    * palette, CMYK, YCbCr, LAB, HSV are converted to RGB.

    Raises :class:`ImageReadError` (a ``ValueError``) naming the file when it is missing,
    corrupt, truncated or not an image.
    """
    return _to_rgb(open_image(path, "image"), f"image {path}")


#: Formats :func:`decode_image` lets Pillow try (photos; not every exotic decoder Pillow has).
UPLOAD_FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "WEBP")


def decode_image(
    data: bytes,
    name: str = "upload",
    max_pixels: int | None = None,
    formats: tuple[str, ...] | None = UPLOAD_FORMATS,
) -> np.ndarray:
    """Decode an image file held in memory (an upload) exactly as :func:`read_image` reads files.

    Args:
        data: the file's bytes.
        name: what the messages call it.
        max_pixels: refuse images with more pixels (checked on the header, before decoding).
        formats: Pillow formats to try (default :data:`UPLOAD_FORMATS`; None: all of Pillow's).

    Raises:
        ImageTooLargeError: more than ``max_pixels``, or over Pillow's decompression-bomb limit.
        ImageReadError: empty, corrupt, truncated or not an image of ``formats``.
    """
    import io

    if not data:
        raise ImageReadError(f"{name} is empty: send the bytes of a JPEG, PNG or TIFF photo")
    if formats is not None:
        Image.init()  # register every plugin, then keep the ones this Pillow build has
        formats = tuple(f for f in formats if f in Image.OPEN)
    fix = f"send a {', '.join(formats or ('JPEG', 'PNG', 'TIFF'))} photo"
    big = "send a smaller image (or downscale it first)"
    im = _decode(io.BytesIO(data), name, fix, big, max_pixels=max_pixels, formats=formats)
    return _to_rgb(im, name)


def _to_rgb(im: Image.Image, label: str) -> np.ndarray:
    """The conversions of :func:`read_image`: any decoded image to ``(H, W, 3)`` uint8 RGB."""
    mode = im.mode
    if mode == "RGB":
        arr = np.asarray(im)
    elif mode in _TO_RGB_MODES:
        arr = np.asarray(im.convert("RGB"))
    else:
        # I;16 / I;16B / I;16L / I / F and other wide modes: go through numpy so no bits are lost
        # before the deliberate reduction to 8 bits.
        try:
            arr = np.asarray(im)
        except Exception:
            arr = np.asarray(im.convert("RGB"))
        arr = _bit_depth_to_uint8(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageReadError(
            f"{label} has an unsupported layout {arr.shape} (mode {mode}): save it as an RGB "
            "or grey PNG/JPEG"
        )
    im.close()  # free Pillow's own buffer (4 bytes per pixel) before the copy: big photos
    del im
    return np.array(arr, dtype=np.uint8, order="C")  # a writable copy (PIL arrays are read-only)


def binarize_mask(array: np.ndarray) -> np.ndarray:
    """Apply the binarisation rule to a grey (H, W) or colour (H, W, C) mask array.

    The rule (the same for every dataset and file type):

    1. Colour masks become grey by taking the **maximum over the colour channels** (so a red or
       green crack drawn on black counts as fully on; luminance would dim pure red to 76).
    2. ``bool`` arrays are returned as they are.
    3. Floats whose maximum is <= 1 are fractions/probabilities: crack = value >= 0.5 (a binary
       {0.0, 1.0} float mask gives the same result as ``> 0``).
    4. Otherwise, if the maximum value is <= 1 (a {0, 1} label mask, a 1-bit PNG):
       crack = value > 0.
    5. Otherwise crack = value > 127 on the 8-bit scale: exact for {0, 255} masks and right for
       near-binary masks whose edges were smoothed by resizing or JPEG (CRACK500's RGB masks hold
       every value 0..255 along crack borders; the midpoint is the unbiased cut). Integer masks
       wider than 8 bits are first brought to 8 bits by their bit depth (so {0, 65535} works,
       and so does {0, 1} or {0, 255} stored in 16 bits).

    Not handled here: multi-class label maps (CrackForest's 1 = background, 2 = crack, see
    :func:`read_mat_mask`) and inverted masks (black cracks on white), which no rule can tell
    from a mostly-crack mask.
    """
    a = np.asarray(array)
    if a.ndim == 3:
        if a.shape[2] == 1:
            a = a[:, :, 0]
        else:
            a = a.max(axis=2)
    if a.ndim != 2:
        raise ValueError(f"expected an (H, W) or (H, W, C) mask array, got shape {a.shape}")
    if a.dtype == np.bool_:
        return a.copy()
    if a.size == 0:
        return np.zeros(a.shape, dtype=bool)
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a, nan=0.0)
        if a.max() <= 1.0:
            return a >= 0.5
        return a > 127
    if a.max() <= 1:
        return a > 0
    return _bit_depth_to_uint8(a) > 127


def _mask_grey(im: Image.Image) -> np.ndarray:
    """Turn a decoded mask image into a 2-D array (grey values or label indices)."""
    mode = im.mode
    if mode == "1":
        return np.asarray(im).astype(np.uint8)  # 0/1
    if mode in ("P", "PA"):
        idx = np.asarray(im.convert("P") if mode == "PA" else im)
        palette = im.getpalette() or []
        pal = np.asarray(palette[: 3 * 256], dtype=np.uint8).reshape(-1, 3)
        used = np.unique(idx)
        used = used[used < len(pal)]
        if (
            len(pal)
            and np.all(pal[used, 0] == pal[used, 1])
            and np.all(pal[used, 1] == pal[used, 2])
        ):
            return pal[:, 0][np.minimum(idx, len(pal) - 1)]  # a grey image stored with a palette
        return idx  # a label map: the index is the class
    if mode in ("LA", "La", "RGBA", "RGBa"):
        arr = np.asarray(im)
        colour = arr[:, :, :-1].max(axis=2)
        alpha = arr[:, :, -1]
        if colour.size and colour.min() == colour.max() and alpha.min() != alpha.max():
            return alpha  # annotation drawn only in the alpha channel of a flat layer
        return colour
    if mode in ("L", "RGB", "I;16", "I;16B", "I;16L", "I", "F"):
        return np.asarray(im)
    return np.asarray(im.convert("L"))


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a ground-truth mask as an ``(H, W)`` bool array, True on crack pixels.

    The file is decoded (EXIF orientation applied, as for images) and reduced to one value per
    pixel:

    * 1-bit (mode ``1``) → 0/1; grey (``L``, 16-bit) → its value;
    * RGB / RGBA → the maximum over the colour channels (alpha is used only when the colour is
      flat and the alpha varies, i.e. the drawing lives in the alpha channel);
    * palette (``P``) → the grey value when every used palette colour is grey (a grey image
      saved with a palette), otherwise the palette index (a label map: index > 0 is crack).

    Then :func:`binarize_mask` decides: if the maximum is <= 1, crack = value > 0; otherwise
    crack = value > 127. This covers {0, 1}, 1-bit, {0, 255}, RGB and near-binary resized or
    JPEG-compressed masks (DeepCrack's mix of 8-bit and 1-bit PNGs, CRACK500's RGB masks).

    ``.mat`` files are delegated to :func:`read_mat_mask` (CrackForest ground truth).
    """
    if Path(path).suffix.lower() == ".mat":
        return read_mat_mask(path)
    im = open_image(path, "mask")
    return binarize_mask(_mask_grey(im))


def _find_segmentation(obj, depth: int = 0):
    """Search a loadmat result for the ``Segmentation`` array, however it is nested."""
    if depth > 8 or obj is None:
        return None
    if isinstance(obj, dict):
        for key in ("Segmentation", "segmentation", "groundTruth", "GroundTruth", "gt"):
            if key in obj:
                found = _find_segmentation(obj[key], depth + 1)
                if found is not None:
                    return found
        return None
    if isinstance(obj, np.ndarray):
        if obj.dtype.names:  # MATLAB struct array (possibly 1x1)
            for key in ("Segmentation", "segmentation"):
                if key in obj.dtype.names:
                    for el in obj[key].flat:
                        found = _find_segmentation(el, depth + 1)
                        if found is not None:
                            return found
            return None
        if obj.dtype == object:  # MATLAB cell array / 1x1 wrapper
            for el in obj.flat:
                found = _find_segmentation(el, depth + 1)
                if found is not None:
                    return found
            return None
        if obj.ndim >= 2 and obj.size > 1 and (obj.dtype.kind in "biuf"):
            return obj
        return None
    return None


def read_mat_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a CrackForest (CFD) ``.mat`` ground truth as an ``(H, W)`` bool crack mask.

    CFD stores ``groundTruth`` as a 1x1 MATLAB struct whose ``Segmentation`` field is a label
    image with 1 = background and 2 = crack (``loadmat(f)['groundTruth'][0][0]['Segmentation']``).
    Both that nested form and flat variants (a top-level ``Segmentation`` variable, or a
    ``groundTruth`` that is the array itself) are accepted. Labels within {0, 1, 2} that contain
    a 2 give crack = label == 2; anything else goes through :func:`binarize_mask`.
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"mask {p} does not exist: check the path (and the working folder)")
    try:
        from scipy.io import loadmat

        data = loadmat(str(p), squeeze_me=False, struct_as_record=True)
    except Exception as exc:  # scipy raises many kinds on bad files
        raise ImageReadError(
            f"mask {p} could not be read as a MATLAB file ({type(exc).__name__}: {exc}): the file "
            "is corrupt or saved as MATLAB v7.3 (HDF5); re-save it with save(..., '-v7') or "
            "convert the masks to PNG"
        ) from None
    user = {k: v for k, v in data.items() if not k.startswith("__")}
    seg = _find_segmentation(user)
    if seg is None and len(user) == 1:
        seg = _find_segmentation(next(iter(user.values())))
    if seg is None:
        raise ImageReadError(
            f"mask {p} has no 'groundTruth'/'Segmentation' array (variables: "
            f"{', '.join(sorted(user)) or 'none'}): CrackForest .mat files hold "
            "groundTruth.Segmentation with 2 = crack; convert other layouts to PNG masks"
        )
    seg = np.asarray(seg)
    while seg.ndim > 2 and seg.shape[-1] == 1:
        seg = seg[..., 0]
    if seg.ndim != 2:
        raise ImageReadError(f"mask {p}: Segmentation has shape {seg.shape}, expected (H, W)")
    values = np.unique(seg)
    if seg.dtype.kind in "biuf" and 2 in values and np.isin(values, (0, 1, 2)).all():
        return seg == 2
    return binarize_mask(seg)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Return ``(width, height)`` of an image or mask as :func:`read_image` would deliver it.

    Reads only the header (plus the EXIF orientation, which may swap the sides); ``.mat`` masks
    are loaded. Raises :class:`ImageReadError` when the header cannot be read.
    """
    p = Path(path)
    if p.suffix.lower() == ".mat":
        h, w = read_mat_mask(p).shape
        return w, h
    if not p.exists():
        raise ImageReadError(f"{p} does not exist: check the path (and the working folder)")
    try:
        with Image.open(p) as im:
            w, h = im.size
            orientation = 1
            # PNG's getexif() decodes the whole file to look past the pixels; EXIF stored
            # before the pixels (the usual place) is already in im.info.
            if im.format != "PNG" or "exif" in im.info:
                try:
                    orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
                except Exception:
                    orientation = 1
    except Image.DecompressionBombError:
        raise ImageReadError(
            f"{p} is too large for Pillow's safety limit: split it into tiles, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(
            f"{p} could not be read ({type(exc).__name__}: {exc}): the file is corrupt or not an "
            "image; re-export it or remove it from the folder"
        ) from None
    if orientation in _SWAPPING_ORIENTATIONS:
        w, h = h, w
    return w, h
