"""Training augmentation and evaluation conversion for (image, mask) pairs.

Built on ``torchvision.transforms.v2``: torchvision is already a hard dependency (no OpenCV or
albumentations to install), and its functional kernels dispatch on ``tv_tensors`` types, so one
geometric call moves an ``Image`` and a ``Mask`` by exactly the same pixels, and masks are only
ever resampled with nearest-neighbour interpolation: they stay binary and aligned.

Every transform is a callable ``(image uint8 (H, W, 3), mask bool (H, W)) -> (image, mask)``
returning the tensors of :func:`crackseg.data.io.to_tensor` (float32 ``(3, H, W)``, normalised)
and :func:`crackseg.data.io.mask_to_tensor` (float32 ``(1, H, W)`` in {0, 1}).

Randomness comes from torch's generator (the global one unless a ``generator`` is given), so
``torch.manual_seed`` makes a run repeatable and each DataLoader worker, which torch seeds
differently, draws different augmentations (numpy's global RNG would repeat across workers).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from crackseg.data.io import MEAN, STD, mask_to_tensor, to_tensor

__all__ = ["TrainTransform", "EvalTransform"]


def _as_pair(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def _check_inputs(image: np.ndarray, mask: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"expected a uint8 image (0..255), got {image.dtype}: read it with "
            "crackseg.data.io.read_image, which brings every format to 8 bits"
        )
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} differs from the image's {tuple(image.shape[:2])}: "
            "masks must have the image's size"
        )


class TrainTransform:
    """Random geometric + photometric augmentation for training on crops.

    Geometry (image and mask together, in this order):

    1. scale jitter: both resized by a factor drawn log-uniformly from ``scale`` (image
       bilinear with antialiasing, mask nearest-neighbour, centre-aligned like the bilinear);
    2. padding up to ``crop_size`` when smaller, ``pad_mode`` "reflect" (image *and* mask are
       reflected, so a mirrored crack is labelled as crack) or "constant" (0 for both);
    3. a ``crop_size`` crop; with probability ``crack_crop_p`` (when the mask has cracks) it is
       placed to contain a randomly chosen crack pixel, otherwise uniformly. Cracks cover
       2-4 % of pixels, so uniform crops of a large photo are often crack-free;
    4. horizontal / vertical flips (p = 0.5 each) and a rotation by k * 90 degrees (k uniform in
       0..3; only 0 or 180 degrees when the crop is not square).

    Photometric (image only, on [0, 1] floats, each with probability ``color_p`` when
    ``color``): brightness and contrast factors in ``1 +- brightness/contrast``, gamma in
    ``gamma``, saturation in ``1 +- saturation``; then Gaussian blur (probability ``blur_p``,
    sigma in ``blur_sigma``), additive Gaussian noise (probability ``noise_p``, sigma in
    ``noise_sigma``, clipped to [0, 1]) and a JPEG round trip (probability ``jpeg_p``, quality
    uniform in ``jpeg_quality``: the block artefacts of phone and survey-camera photos).

    ``crop_size=None`` skips padding and cropping (whole images, which then cannot be batched
    unless they share a size).

    ``generator``: a private ``torch.Generator`` for reproducible draws independent of the
    global seed. Leave it ``None`` with a multi-worker DataLoader: every worker would copy the
    same generator state and repeat the same augmentations.
    """

    def __init__(
        self,
        crop_size: int | tuple[int, int] | None = 256,
        scale: tuple[float, float] = (0.75, 1.5),
        hflip: bool = True,
        vflip: bool = True,
        rot90: bool = True,
        color: bool = True,
        blur_p: float = 0.2,
        noise_p: float = 0.2,
        crack_crop_p: float = 0.6,
        pad_mode: str = "reflect",
        color_p: float = 0.5,
        brightness: float = 0.25,
        contrast: float = 0.25,
        gamma: tuple[float, float] = (0.7, 1.5),
        saturation: float = 0.2,
        blur_sigma: tuple[float, float] = (0.3, 1.5),
        noise_sigma: tuple[float, float] = (0.01, 0.05),
        jpeg_p: float = 0.0,
        jpeg_quality: tuple[int, int] = (30, 95),
        generator: torch.Generator | None = None,
    ) -> None:
        if pad_mode not in ("reflect", "constant"):
            raise ValueError(f"pad_mode must be 'reflect' or 'constant', got {pad_mode!r}")
        lo, hi = scale
        if not 0 < lo <= hi:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        self.crop_size = _as_pair(crop_size)
        self.scale = (float(lo), float(hi))
        self.hflip, self.vflip, self.rot90 = hflip, vflip, rot90
        self.color, self.color_p = color, color_p
        self.blur_p, self.noise_p = blur_p, noise_p
        self.crack_crop_p = crack_crop_p
        self.pad_mode = pad_mode
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.gamma, self.blur_sigma, self.noise_sigma = gamma, blur_sigma, noise_sigma
        self.jpeg_p, self.jpeg_quality = jpeg_p, jpeg_quality
        self.generator = generator

    # -- random draws -------------------------------------------------------------------------
    def _rand(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def _uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self._rand()

    def _randint(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi] (inclusive)."""
        return int(torch.randint(lo, hi + 1, (), generator=self.generator))

    # -- geometry ------------------------------------------------------------------------------
    def _scale(self, img, mask):
        lo, hi = self.scale
        if lo == hi == 1.0:
            return img, mask
        s = math.exp(self._uniform(math.log(lo), math.log(hi))) if hi > lo else lo
        h, w = img.shape[-2:]
        size = [max(1, round(h * s)), max(1, round(w * s))]
        if size == [h, w]:
            return img, mask
        img = F.resize(img, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        mask = F.resize(mask, size, interpolation=InterpolationMode.NEAREST_EXACT)
        return img, mask

    def _pad(self, img, mask, ch: int, cw: int):
        while True:
            h, w = img.shape[-2:]
            need_h, need_w = max(0, ch - h), max(0, cw - w)
            if need_h == 0 and need_w == 0:
                return img, mask
            if self.pad_mode == "reflect":
                # reflection cannot reach further than the image is wide: pad in steps
                need_h, need_w = min(need_h, h - 1), min(need_w, w - 1)
                if need_h == 0 and need_w == 0:  # a 1-pixel image: nothing to reflect
                    return self._pad_constant(img, mask, ch, cw)
            else:
                return self._pad_constant(img, mask, ch, cw)
            top, left = need_h // 2, need_w // 2
            padding = [left, top, need_w - left, need_h - top]
            img = F.pad(img, padding, padding_mode="reflect")
            mask = F.pad(mask, padding, padding_mode="reflect")

    @staticmethod
    def _pad_constant(img, mask, ch: int, cw: int):
        h, w = img.shape[-2:]
        need_h, need_w = max(0, ch - h), max(0, cw - w)
        top, left = need_h // 2, need_w // 2
        padding = [left, top, need_w - left, need_h - top]
        return F.pad(img, padding, fill=0), F.pad(mask, padding, fill=0)

    def _crop(self, img, mask, ch: int, cw: int):
        h, w = img.shape[-2:]
        top = left = None
        if self.crack_crop_p > 0 and self._rand() < self.crack_crop_p:
            ys, xs = torch.nonzero(mask[0], as_tuple=True)
            if len(ys):
                j = self._randint(0, len(ys) - 1)
                y, x = int(ys[j]), int(xs[j])
                top = self._randint(max(0, y - ch + 1), min(y, h - ch))
                left = self._randint(max(0, x - cw + 1), min(x, w - cw))
        if top is None:
            top = self._randint(0, h - ch)
            left = self._randint(0, w - cw)
        return F.crop(img, top, left, ch, cw), F.crop(mask, top, left, ch, cw)

    def _flip_rotate(self, img, mask):
        if self.hflip and self._rand() < 0.5:
            img, mask = F.horizontal_flip(img), F.horizontal_flip(mask)
        if self.vflip and self._rand() < 0.5:
            img, mask = F.vertical_flip(img), F.vertical_flip(mask)
        if self.rot90:
            square = img.shape[-1] == img.shape[-2]
            k = self._randint(0, 3) if square else 2 * self._randint(0, 1)
            if k:
                img = torch.rot90(img, k, dims=(-2, -1))
                mask = torch.rot90(mask, k, dims=(-2, -1))
        return img, mask

    # -- photometric ---------------------------------------------------------------------------
    def _photometric(self, x: torch.Tensor) -> torch.Tensor:
        if self.color:
            if self.brightness and self._rand() < self.color_p:
                b = self.brightness
                x = F.adjust_brightness(x, self._uniform(1 - b, 1 + b))
            if self.contrast and self._rand() < self.color_p:
                c = self.contrast
                x = F.adjust_contrast(x, self._uniform(1 - c, 1 + c))
            if self.gamma and self._rand() < self.color_p:
                x = F.adjust_gamma(x, self._uniform(*self.gamma))
            if self.saturation and self._rand() < self.color_p:
                s = self.saturation
                x = F.adjust_saturation(x, self._uniform(1 - s, 1 + s))
        if self.blur_p and self._rand() < self.blur_p:
            sigma = self._uniform(*self.blur_sigma)
            k = 2 * math.ceil(3 * sigma) + 1
            x = F.gaussian_blur(x, [k, k], [sigma, sigma])
        if self.noise_p and self._rand() < self.noise_p:
            sigma = self._uniform(*self.noise_sigma)
            noise = torch.randn(x.shape, generator=self.generator)
            x = (x + sigma * noise).clamp_(0.0, 1.0)
        if self.jpeg_p and self._rand() < self.jpeg_p:
            quality = self._randint(*self.jpeg_quality)
            x8 = x.mul(255.0).round_().to(torch.uint8)
            x = F.jpeg(x8, quality).float().div_(255.0)
        return x

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        _check_inputs(image, mask)
        image = np.require(image, requirements=["C", "W"])  # torch wants a writable array
        img = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1))
        m = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask > 0, dtype=np.uint8))[None])
        img, m = self._scale(img, m)
        if self.crop_size is not None:
            ch, cw = self.crop_size
            img, m = self._pad(img, m, ch, cw)
            img, m = self._crop(img, m, ch, cw)
        img, m = self._flip_rotate(img, m)
        x = img.as_subclass(torch.Tensor).float().div_(255.0)
        x = self._photometric(x)
        x = F.normalize(x, list(MEAN), list(STD))
        y = (m.as_subclass(torch.Tensor) > 0).float()
        return x.contiguous(), y.contiguous()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(crop_size={self.crop_size}, scale={self.scale}, "
            f"hflip={self.hflip}, vflip={self.vflip}, rot90={self.rot90}, color={self.color}, "
            f"blur_p={self.blur_p}, noise_p={self.noise_p}, jpeg_p={self.jpeg_p}, "
            f"crack_crop_p={self.crack_crop_p}, "
            f"pad_mode={self.pad_mode!r})"
        )


class EvalTransform:
    """No augmentation, no resizing: ``(to_tensor(image), mask_to_tensor(mask))``."""

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        _check_inputs(image, mask)
        return to_tensor(image), mask_to_tensor(mask)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
