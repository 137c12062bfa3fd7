"""Crack segmentation datasets: folder pairs, the public layouts, and text specs.

Sample convention (every dataset here, and the synthetic one):

* ``dataset[i]`` without a transform returns ``(image, mask)`` tensors:
  ``to_tensor(read_image(...))`` float32 ``(3, H, W)`` normalised, and
  ``mask_to_tensor(read_mask(...))`` float32 ``(1, H, W)`` in {0, 1};
* with ``transform`` it returns ``transform(image_uint8_hwc, mask_bool_hw)``: the transform makes
  the tensors (see :mod:`crackseg.data.transforms`);
* ``dataset.sample(i)`` returns the raw ``(image_uint8_hwc, mask_bool_hw)`` numpy arrays,
  ``dataset.names`` the file stems and ``dataset.pairs`` the ``(image_path, mask_path)`` list.

Text specs (for the CLIs and configs), parsed by :func:`parse_dataset_spec`::

    deepcrack:PATH        PATH/{split}_img/x.jpg  <-> PATH/{split}_lab/x.png
    crack500:PATH         PATH/{split}_img/x.jpg  <-> PATH/{split}_lab/x_mask.png
    crackforest:PATH      PATH/image/x.jpg        <-> PATH/groundTruth/x.mat   (alias cfd)
    carnet:PATH           PATH/img/x.jpg          <-> PATH/gt/x.png   (sun520, rain365, bjn260)
    folder:IMAGES:MASKS[:SUFFIX]   any pair of folders; '{split}' in a path is replaced
    synth:N[:SIZE[:CONDITION]]     N procedural images (crackseg.data.synth)
"""

from __future__ import annotations

import bisect
import difflib
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from crackseg.data.io import (
    IMAGE_EXTENSIONS,
    MASK_EXTENSIONS,
    ImageReadError,
    image_size,
    mask_to_tensor,
    read_image,
    read_mask,
    to_tensor,
)
from crackseg.errors import CrackSegError

__all__ = [
    "DatasetError",
    "PairProblem",
    "PairedFolderDataset",
    "ConcatCrackDataset",
    "deepcrack",
    "crack500",
    "crackforest",
    "carnet_set",
    "parse_dataset_spec",
    "build_dataset",
    "split_train_val",
    "skipped_pairs",
    "DATASET_KINDS",
]

Transform = Callable[[np.ndarray, np.ndarray], tuple[torch.Tensor, torch.Tensor]]

# When several files share a stem, the first extension in this order wins.
_EXT_PRIORITY = {
    ext: i for i, ext in enumerate((".png", ".bmp", ".tif", ".tiff", ".mat", ".jpg", ".jpeg"))
}
_JPEG = (".jpg", ".jpeg")


class DatasetError(CrackSegError):
    """A dataset folder or pair is unusable; the message names the path and the fix."""


@dataclass(frozen=True)
class PairProblem:
    """One bad pair found by :meth:`PairedFolderDataset.validate`."""

    index: int  # position in ``pairs`` (-1 for an image that has no mask)
    image: Path
    mask: Path | None
    reason: str

    def __str__(self) -> str:
        return self.reason


def _ext(p: Path) -> str:
    return p.suffix.lower()


def _list_files(folder: Path, extensions: Sequence[str]) -> list[Path]:
    """Files of ``folder`` with one of ``extensions`` (any case), hidden files excluded.

    Hidden files include macOS ``._x.jpg`` AppleDouble companions, which carry the extension of
    an image but hold no image.
    """
    exts = {e.lower() for e in extensions}
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and _ext(p) in exts and not p.name.startswith(".")
        ),
        key=lambda p: p.name,
    )


def _check_folder(folder: Path, role: str) -> None:
    if folder.is_dir():
        return
    hint = ""
    parent = folder.parent
    if parent.is_dir():
        siblings = sorted(p.name for p in parent.iterdir() if p.is_dir())
        close = difflib.get_close_matches(folder.name, siblings, n=3, cutoff=0.5)
        if close:
            hint = f" Did you mean {', '.join(str(parent / c) for c in close)}?"
        elif siblings:
            hint = f" {parent} contains: {', '.join(siblings[:10])}."
    if folder.exists():
        raise DatasetError(f"{role} folder {folder} is a file, not a folder: pass the folder.")
    raise DatasetError(f"{role} folder {folder} does not exist: check the path.{hint}")


def _by_stem(files: list[Path], role: str, folder: Path) -> dict[str, Path]:
    """Index files by stem; on duplicate stems (x.png and x.jpg) keep one by priority and warn."""
    out: dict[str, Path] = {}
    dupes: list[str] = []
    for p in sorted(files, key=lambda p: (p.stem, _EXT_PRIORITY.get(_ext(p), 99))):
        if p.stem in out:
            dupes.append(p.name)
            continue
        out[p.stem] = p
    if dupes:
        warnings.warn(
            f"{len(dupes)} {role} file(s) in {folder} share a stem with another file and were "
            f"ignored (e.g. {', '.join(dupes[:5])}); kept .png/.bmp/.tif/.mat/.jpg in that order",
            stacklevel=3,
        )
    return out


class PairedFolderDataset(Dataset):
    """Images in one folder, masks in another, paired by file stem.

    The mask of ``images_dir/x.jpg`` is ``masks_dir/x{mask_suffix}.EXT`` with EXT any of
    .png/.jpg/.jpeg/.bmp/.tif/.tiff/.mat (any case). Images may have any of those extensions
    except .mat. Masks without an image are ignored (with a warning saying how many). The two
    folders may be the same folder: then a non-empty ``mask_suffix`` tells masks from images,
    or, with no suffix, JPEGs are the images and same-stem PNG/BMP/TIFF/MAT files the masks.

    Pairs are checked lazily (when an item is loaded: sizes must match, files must decode), or
    all at once with :meth:`validate`. With ``skip_bad=True`` the constructor decodes every
    pair in full (so a truncated JPEG is found too) and drops the bad ones, and images without
    a mask, with a warning; they are listed in ``self.skipped``. Without it, an image without a
    mask is an error at construction and a bad pair raises :class:`DatasetError` when it is
    loaded.
    """

    def __init__(
        self,
        images_dir: str | os.PathLike,
        masks_dir: str | os.PathLike,
        mask_suffix: str = "",
        transform: Transform | None = None,
        skip_bad: bool = False,
    ) -> None:
        self.images_dir = Path(images_dir).expanduser()
        self.masks_dir = Path(masks_dir).expanduser()
        self.mask_suffix = mask_suffix
        self.transform = transform
        self.skip_bad = skip_bad
        self.skipped: list[PairProblem] = []

        _check_folder(self.images_dir, "images")
        _check_folder(self.masks_dir, "masks")
        same = self.images_dir.resolve() == self.masks_dir.resolve()

        image_files = _list_files(self.images_dir, IMAGE_EXTENSIONS)
        mask_files = _list_files(self.masks_dir, MASK_EXTENSIONS)
        if same:
            if mask_suffix:
                image_files = [p for p in image_files if not p.stem.endswith(mask_suffix)]
                mask_files = [p for p in mask_files if p.stem.endswith(mask_suffix)]
            else:
                image_files = [p for p in image_files if _ext(p) in _JPEG]
                mask_files = [p for p in mask_files if _ext(p) not in _JPEG]
        if not image_files:
            subdirs = sorted(p.name for p in self.images_dir.iterdir() if p.is_dir())
            hint = (
                f" It contains the folders {', '.join(subdirs[:10])}: point at the one that holds "
                "the images."
                if subdirs
                else ""
            )
            raise DatasetError(
                f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {self.images_dir}.{hint}"
            )

        images = _by_stem(image_files, "image", self.images_dir)
        masks = _by_stem(mask_files, "mask", self.masks_dir)
        pairs: list[tuple[Path, Path]] = []
        missing: list[Path] = []
        for stem, img in sorted(images.items()):
            m = masks.get(stem + mask_suffix)
            if m is None:
                missing.append(img)
            else:
                pairs.append((img, m))
        used = {m for _, m in pairs}
        orphans = [m for m in masks.values() if m not in used]

        if missing:
            example_masks = ", ".join(p.name for p in mask_files[:3]) or "none"
            msg = (
                f"{len(missing)} of {len(images)} images in {self.images_dir} have no mask in "
                f"{self.masks_dir} (looked for STEM{mask_suffix}.png/.jpg/.bmp/.tif/.mat), e.g. "
                f"{', '.join(p.name for p in missing[:5])}. The masks there look like: "
                f"{example_masks}. Fix: check the folders and the mask suffix (CRACK500 uses "
                "'_mask'; folder:IMAGES:MASKS:_mask), or drop these images with --skip-bad "
                "(evaluate) / --set skip_bad=true (train)."
            )
            if not skip_bad:
                raise DatasetError(msg)
            warnings.warn(msg, stacklevel=2)
            for img in missing:
                self.skipped.append(PairProblem(-1, img, None, f"{img} has no mask"))
        if orphans:
            warnings.warn(
                f"{len(orphans)} mask(s) in {self.masks_dir} have no image in {self.images_dir} "
                f"and are ignored (e.g. {', '.join(p.name for p in orphans[:5])})",
                stacklevel=2,
            )
        if not pairs:
            raise DatasetError(
                f"no image/mask pairs in {self.images_dir} and {self.masks_dir}: "
                f"check mask_suffix={mask_suffix!r}"
            )
        self.pairs: list[tuple[Path, Path]] = pairs

        if skip_bad:
            problems = self.validate(progress=False, full=True)
            if problems:
                bad = {p.index for p in problems}
                self.pairs = [pair for i, pair in enumerate(self.pairs) if i not in bad]
                self.skipped.extend(problems)
                warnings.warn(
                    f"skipped {len(problems)} bad pair(s) of {len(pairs)} in {self.images_dir}: "
                    + "; ".join(str(p) for p in problems[:5]),
                    stacklevel=2,
                )
                if not self.pairs:
                    raise DatasetError(
                        f"every pair in {self.images_dir} and {self.masks_dir} is bad: "
                        + "; ".join(str(p) for p in problems[:5])
                    )

    # -- access -------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [img.stem for img, _ in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw pair: ``(image uint8 (H, W, 3), mask bool (H, W))``, sizes checked."""
        img_path, mask_path = self.pairs[index]
        try:
            image = read_image(img_path)
            mask = read_mask(mask_path)
        except ImageReadError as exc:
            raise DatasetError(
                f"{exc} (pair {index} of the dataset in {self.images_dir}; --skip-bad "
                "(evaluate) or --set skip_bad=true (train) skips every pair that does not decode)"
            ) from None
        if mask.shape != image.shape[:2]:
            raise DatasetError(
                _size_message(mask_path, mask.shape[1], mask.shape[0], img_path)
                + f" ({img_path.name} is {image.shape[1]}x{image.shape[0]})"
            )
        return image, mask

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} pairs")
        image, mask = self.sample(index)
        if self.transform is not None:
            return self.transform(image, mask)
        return to_tensor(image), mask_to_tensor(mask)

    def validate(self, progress: bool = True, full: bool = False) -> list[PairProblem]:
        """Check every pair; return the problems found (an empty list when all is well).

        By default only the file headers are read (fast: sizes and format), which finds
        unreadable files and size mismatches; ``full=True`` decodes every file too, which also
        finds truncated images.
        """
        problems: list[PairProblem] = []
        iterator = enumerate(self.pairs)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, total=len(self.pairs), desc="checking pairs", unit="pair")
        for i, (img, mask) in iterator:
            try:
                if full:
                    ih, iw = read_image(img).shape[:2]
                    mh, mw = read_mask(mask).shape
                else:
                    iw, ih = image_size(img)
                    mw, mh = image_size(mask)
            except ImageReadError as exc:
                problems.append(PairProblem(i, img, mask, str(exc)))
                continue
            if (iw, ih) != (mw, mh):
                problems.append(PairProblem(i, img, mask, _size_message(mask, mw, mh, img, iw, ih)))
        return problems

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.images_dir)!r}, {str(self.masks_dir)!r}, "
            f"mask_suffix={self.mask_suffix!r}, pairs={len(self)})"
        )


def _size_message(mask: Path, mw: int, mh: int, img: Path, iw: int | None = None, ih=None) -> str:
    size = f"{iw}x{ih}" if iw is not None else "a different size"
    return f"{mask} is {mw}x{mh} but {img} is {size}: masks must have the image's size"


# --------------------------------------------------------------------------------------------
# Presets for the public layouts
# --------------------------------------------------------------------------------------------


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(
        p.is_file() and _ext(p) in IMAGE_EXTENSIONS for p in folder.iterdir()
    )


def _layout_error(root: Path, name: str, needed: list[str], example: str) -> DatasetError:
    root_msg = f"{root} does not exist" if not root.exists() else f"{root} has no {needed[0]}/"
    hint = ""
    if root.is_dir():
        if _has_images(root):
            hint = (
                f" {root} itself holds images: it looks like a split folder; pass the dataset "
                f"root instead (the folder that contains {' and '.join(needed)})."
            )
        else:
            found = sorted(
                (p for p in root.iterdir() if p.is_dir() and (p / needed[0]).is_dir()),
                key=lambda p: (name.lower() not in p.name.lower(), p.name),
            )
            subdirs = sorted(p.name for p in root.iterdir() if p.is_dir())
            if found:
                hint = f" Did you mean {found[0]}?"
            elif subdirs:
                hint = f" It contains: {', '.join(subdirs[:10])}."
    return DatasetError(
        f"{root_msg}: a {name} root must contain {' and '.join(f'{n}/' for n in needed)} "
        f"(e.g. {example}).{hint}"
    )


def _split_dataset(root, name, split, img_sub, lab_sub, suffix, example, transform, skip_bad):
    root = Path(root).expanduser()
    img_dir, lab_dir = root / img_sub.format(split=split), root / lab_sub.format(split=split)
    if not img_dir.is_dir() or not lab_dir.is_dir():
        err = _layout_error(root, name, [img_dir.name, lab_dir.name], example)
        if root.is_dir() and not _has_images(root):
            splits = sorted(
                p.name[: -len("_img")]
                for p in root.iterdir()
                if p.is_dir() and p.name.endswith("_img")
            )
            if splits:
                err = DatasetError(f"{err} Splits present: {', '.join(splits)}.")
        raise err
    return PairedFolderDataset(img_dir, lab_dir, suffix, transform=transform, skip_bad=skip_bad)


def deepcrack(root, split: str = "train", transform=None, skip_bad: bool = False):
    """DeepCrack (Liu et al. 2019): ``{split}_img/x.jpg`` <-> ``{split}_lab/x.png``.

    300 train / 237 test pairs, 544x384. Test masks mix 8-bit {0, 255} and 1-bit PNGs; both are
    read by :func:`crackseg.data.io.read_mask`.
    """
    return _split_dataset(
        root, "DeepCrack", split, "{split}_img", "{split}_lab", "",
        "deepcrack/train_img/11111.jpg + deepcrack/train_lab/11111.png", transform, skip_bad,
    )  # fmt: skip


def crack500(root, split: str = "train", transform=None, skip_bad: bool = False):
    """CRACK500 (Yang et al. 2019): ``{split}_img/x.jpg`` <-> ``{split}_lab/x_mask.png``.

    Masks are 3-channel RGB and near-binary from resizing: binarised at > 127.
    """
    return _split_dataset(
        root, "CRACK500", split, "{split}_img", "{split}_lab", "_mask",
        "crack500/train_img/x.jpg + crack500/train_lab/x_mask.png", transform, skip_bad,
    )  # fmt: skip


def _whole_set(root, name, img_sub, lab_sub, split, example, transform, skip_bad):
    """A set published without a train/test split: ``root[/split]/img_sub`` + ``lab_sub``.

    If ``root/split/`` holds the layout it is used; otherwise the whole set is returned and,
    for any split but train (and "all"), a warning says that train and test would be the
    same images.
    """
    root = Path(root).expanduser()
    base = root
    if split and (root / split / img_sub).is_dir():
        base = root / split
    elif split and split not in ("train", "all", "full"):
        if (root / img_sub).is_dir():
            warnings.warn(
                f"{name} at {root} has no '{split}/' folder: using every image for split "
                f"{split!r}, so train and test are the same images. Arrange {root}/train/"
                f"{img_sub} and {root}/test/{img_sub}, or carve a validation set with "
                "split_train_val().",
                stacklevel=3,
            )
    if not (base / img_sub).is_dir() or not (base / lab_sub).is_dir():
        raise _layout_error(base, name, [img_sub, lab_sub], example)
    return PairedFolderDataset(
        base / img_sub, base / lab_sub, "", transform=transform, skip_bad=skip_bad
    )


def crackforest(root, split: str | None = None, transform=None, skip_bad: bool = False):
    """CrackForest / CFD (Shi et al. 2016): ``image/x.jpg`` <-> ``groundTruth/x.mat``.

    118 images 480x320; ``groundTruth.Segmentation`` has 2 = crack. There is no official
    split: see :func:`_whole_set` for how ``split`` is handled.
    """
    return _whole_set(
        root, "CrackForest", "image", "groundTruth", split,
        "CFD/image/001.jpg + CFD/groundTruth/001.mat", transform, skip_bad,
    )  # fmt: skip


def carnet_set(root, split: str | None = None, transform=None, skip_bad: bool = False):
    """The CarNet sets Sun520 / Rain365 / BJN260: ``img/x.jpg`` <-> ``gt/x.png``."""
    return _whole_set(
        root, "Sun520/Rain365/BJN260", "img", "gt", split,
        "Sun520/img/0001.jpg + Sun520/gt/0001.png", transform, skip_bad,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Text specs
# --------------------------------------------------------------------------------------------

DATASET_KINDS: dict[str, str] = {
    "deepcrack": "deepcrack:/data/deepcrack  ({split}_img/x.jpg + {split}_lab/x.png)",
    "crack500": "crack500:/data/crack500  ({split}_img/x.jpg + {split}_lab/x_mask.png)",
    "crackforest": "crackforest:/data/CFD  (image/x.jpg + groundTruth/x.mat; alias cfd)",
    "carnet": "carnet:/data/Sun520  (img/x.jpg + gt/x.png; aliases sun520, rain365, bjn260)",
    "folder": "folder:/data/images:/data/masks[:_mask]  (same stem + optional mask suffix;"
    " '{split}' in a path becomes the split)",
    "synth": "synth:200[:SIZE[:CONDITION]]  (procedural images with exact masks)",
    "hardneg": "hardneg:400[:SIZE[:SCENE]]  (procedural look-alikes: masonry joints, formwork"
    " seams, slab joints, lane paint and studs, thin shadows; half with real-looking cracks)",
}
_ALIASES = {"cfd": "crackforest", "sun520": "carnet", "rain365": "carnet", "bjn260": "carnet"}
_SYNTH_SEEDS = {"train": 0, "test": 1, "val": 2}


def _kinds_help() -> str:
    return "; ".join(DATASET_KINDS.values())


def parse_dataset_spec(
    spec: str, split: str = "train", transform: Transform | None = None, skip_bad: bool = False
):
    """Build a dataset from a text spec such as ``deepcrack:/data/deepcrack`` (see module doc).

    Only the text before the first ``:`` is the kind, so single-path kinds accept paths that
    contain ``:``. ``synth`` uses seed 0 for train, 1 for test and 2 for val, so the test
    images are never the training images.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise DatasetError(
            f"dataset spec {spec!r} has no kind: write KIND:ARGS, one of: {_kinds_help()}"
        )
    kind, rest = spec.split(":", 1)
    kind = kind.strip().lower()
    kind = _ALIASES.get(kind, kind)
    if not rest:
        raise DatasetError(
            f"dataset spec {spec!r} has nothing after '{kind}:'; e.g. {_kinds_help()}"
        )
    if kind == "deepcrack":
        return deepcrack(rest, split, transform=transform, skip_bad=skip_bad)
    if kind == "crack500":
        return crack500(rest, split, transform=transform, skip_bad=skip_bad)
    if kind == "crackforest":
        return crackforest(rest, split, transform=transform, skip_bad=skip_bad)
    if kind == "carnet":
        return carnet_set(rest, split, transform=transform, skip_bad=skip_bad)
    if kind == "folder":
        parts = rest.split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise DatasetError(
                f"folder spec {spec!r} must be folder:IMAGES:MASKS or folder:IMAGES:MASKS:SUFFIX "
                "(paths containing ':' are not supported here: use PairedFolderDataset directly)"
            )
        images, masks = (p.replace("{split}", split) for p in parts[:2])
        suffix = parts[2] if len(parts) == 3 else ""
        return PairedFolderDataset(images, masks, suffix, transform=transform, skip_bad=skip_bad)
    if kind == "synth":
        n, size, condition = _procedural_args(spec, kind, rest, "CONDITION", "all",
                                              "synth:200 or synth:100:512:night")  # fmt: skip
        from crackseg.data.synth import SynthCrackDataset  # lazy: keeps imports light

        seed = _SYNTH_SEEDS.get(split, 3 + sum(map(ord, split)))
        return SynthCrackDataset(n, size=size, condition=condition, seed=seed, transform=transform)
    if kind == "hardneg":
        n, size, scene = _procedural_args(spec, kind, rest, "SCENE", "any",
                                          "hardneg:400:384 or hardneg:100:384:masonry")  # fmt: skip
        from crackseg.data.hardneg import HardNegativeDataset

        seed = 100 + _SYNTH_SEEDS.get(split, 3 + sum(map(ord, split)))
        return HardNegativeDataset(n, size=size, scene=scene, seed=seed, transform=transform)
    raise DatasetError(f"unknown dataset kind {kind!r} in {spec!r}; valid kinds: {_kinds_help()}")


def _procedural_args(
    spec: str, kind: str, rest: str, third: str, default: str, example: str
) -> tuple[int, int, str]:
    """``N[:SIZE[:THIRD]]`` of a procedural spec (``synth``, ``hardneg``): ``(n, size, third)``."""
    parts = rest.split(":")
    try:
        n = int(parts[0])
        size = int(parts[1]) if len(parts) > 1 and parts[1] else 256
    except ValueError:
        raise DatasetError(
            f"{kind} spec {spec!r} must be {kind}:N[:SIZE[:{third}]] with integers N and SIZE, "
            f"e.g. {example}"
        ) from None
    if n <= 0 or size <= 0:
        raise DatasetError(f"{kind} spec {spec!r}: N and SIZE must be positive")
    return n, size, parts[2] if len(parts) > 2 and parts[2] else default


class ConcatCrackDataset(torch.utils.data.ConcatDataset):
    """Several crack datasets end to end; keeps ``names``, ``pairs`` and ``sample``."""

    def __init__(self, datasets, specs: Sequence[str] | None = None) -> None:
        super().__init__(datasets)
        self.specs = list(specs) if specs is not None else None

    def _locate(self, index: int) -> tuple[Dataset, int]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        d = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[d - 1] if d > 0 else 0
        return self.datasets[d], index - start

    @property
    def names(self) -> list[str]:
        out: list[str] = []
        for d in self.datasets:
            names = getattr(d, "names", None)
            out.extend(names if names is not None else [str(i) for i in range(len(d))])
        return out

    @property
    def pairs(self) -> list:
        out: list = []
        for d in self.datasets:
            out.extend(getattr(d, "pairs", [(None, None)] * len(d)))
        return out

    def sample(self, index: int):
        d, i = self._locate(index)
        return d.sample(i)


def build_dataset(
    specs: str | Sequence[str],
    split: str = "train",
    transform: Transform | None = None,
    skip_bad: bool = False,
):
    """One dataset from one or several specs (concatenated, in order)."""
    if isinstance(specs, str):
        specs = [specs]
    specs = list(specs)
    if not specs:
        raise DatasetError(f"no dataset given; give at least one spec, e.g. {_kinds_help()}")
    datasets = [parse_dataset_spec(s, split, transform=transform, skip_bad=skip_bad) for s in specs]
    return ConcatCrackDataset(datasets, specs)


def split_train_val(
    dataset,
    val_fraction: float = 0.1,
    seed: int = 0,
    group_fn: Callable[[str], str] | None = None,
) -> tuple[list[int], list[int]]:
    """Carve a validation set out of the *training* data: ``(train_indices, val_indices)``.

    Deterministic for a given ``seed`` and length. ``dataset`` may be a dataset or a length.
    With ``group_fn`` (applied to ``dataset.names``) items of the same group go to the same side,
    e.g. ``lambda n: n.split('-')[0]`` keeps DeepCrack's crops of one photo (``11116-1`` ...
    ``11116-4``) together. At least one item goes to validation when ``val_fraction > 0`` and
    there are two or more items (or groups).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = dataset if isinstance(dataset, int) else len(dataset)
    rng = np.random.default_rng(seed)
    if group_fn is None:
        groups = [[i] for i in range(n)]
    else:
        by: dict[str, list[int]] = {}
        for i, name in enumerate(dataset.names):
            by.setdefault(group_fn(name), []).append(i)
        groups = [by[k] for k in sorted(by)]
    if val_fraction == 0.0 or len(groups) < 2:
        return list(range(n)), []
    order = rng.permutation(len(groups))
    target = max(1, round(n * val_fraction))
    val: list[int] = []
    for g in order:
        if len(val) >= target:
            break
        if len(val) + len(groups[g]) >= n:  # never empty the training side
            continue
        val.extend(groups[g])
    val_set = set(val)
    return [i for i in range(n) if i not in val_set], sorted(val)


def skipped_pairs(*datasets) -> list[dict]:
    """What ``skip_bad`` dropped from ``datasets`` (concatenations included), as
    ``{"name", "image", "mask", "reason"}`` dicts for reports (``metrics.json``, summaries)."""
    out: list[dict] = []
    seen: set[int] = set()

    def walk(d) -> None:
        if d is None or id(d) in seen:
            return
        seen.add(id(d))
        for sub in getattr(d, "datasets", []) or []:
            walk(sub)
        for p in getattr(d, "skipped", []) or []:
            out.append(
                {
                    "name": p.image.stem,
                    "image": str(p.image),
                    "mask": str(p.mask) if p.mask else None,
                    "reason": p.reason,
                }
            )

    for d in datasets:
        walk(d)
    return out
