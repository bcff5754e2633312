"""Named benchmark and training sets, and folders of HR(/LR) images, resolved to file pairs.

The data root is ``$SRKIT_DATA``, else ``../shared/data`` from the current directory, else
``shared/data`` beside this source checkout. Its layout (see its README):

- ``benchmark/<Set>/HR/<name>.png`` with ``LR_bicubic/X{s}/<name>.png`` (MATLAB bicubic, replicate
  border) and, for Set5, ``LR_bicubic_swinir/X{s}/<name>x{s}.png`` (MATLAB bicubic, symmetric border).
- ``div2k/HR/im_N.png`` (12 DIV2K validation images) and ``div2k/LR_kernel/X4/im_N.png`` (DIV2KRK).
- ``train/T91/HR/*.bmp`` and ``train/BSD200/HR/*.png``.

Spec strings understood by :func:`resolve_pairs` (names are case-insensitive):

- ``"Set5"``, ``"Set14"``, ``"BSD100"`` (any folder under ``benchmark/``): HR with the replicate-border
  ``LR_bicubic`` files;
- ``"Set5:symmetric"``: HR with the symmetric-border ``LR_bicubic_swinir`` files;
- ``"DIV2K"``: the DIV2K HR images, no LR files (a dataset makes LR on the fly);
- ``"DIV2KRK"``: DIV2K HR with the DIV2KRK blurred LR images (scale 4 only);
- a folder path: ``<folder>/HR/`` with optional ``<folder>/LR_bicubic/X{s}/`` (same file stems, or
  ``<stem>x{s}``), or a folder of images used as HR only.

With ``lr_from_hr=True`` every spec resolves to its HR images only, at any positive scale (non-integer
included): the evaluator then makes the LR images from HR (LIIF's protocol for out-of-distribution scales).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from ..errors import SrkitError
from .io import IMAGE_EXTENSIONS

DATA_ENV = "SRKIT_DATA"


@dataclass(frozen=True)
class ImagePair:
    """An HR image and its LR counterpart (None: the LR is to be made from the HR)."""

    name: str
    hr_path: Path
    lr_path: Optional[Path] = None


def data_root() -> Path:
    """The shared data folder: ``$SRKIT_DATA``, ``./../shared/data``, or ``shared/data`` beside the checkout."""
    env = os.environ.get(DATA_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise SrkitError(f"{DATA_ENV}={env} is not a folder")
        return root
    candidates = [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[3].parent / "shared" / "data"]
    for root in candidates:
        if root.is_dir():
            return root
    raise SrkitError(
        f"no image data folder found: set {DATA_ENV} to it (looked at {', '.join(str(c) for c in candidates)})"
    )


def list_images(folder: Union[str, Path]) -> list[Path]:
    """Image files directly inside ``folder`` (by extension), sorted by name; SrkitError when none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SrkitError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise SrkitError(f"image folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _child_ci(folder: Path, name: str) -> Optional[Path]:
    """The sub-folder of ``folder`` called ``name``, compared case-insensitively."""
    if not folder.is_dir():
        return None
    exact = folder / name
    if exact.is_dir():
        return exact
    for p in folder.iterdir():
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return None


def _check_scale(scale) -> int:
    whole = isinstance(scale, Integral) or (isinstance(scale, Real) and float(scale).is_integer())
    if isinstance(scale, bool) or not whole:
        raise SrkitError(f"scale must be a whole number such as 2, 3 or 4, got {scale!r}")
    s = int(scale)
    if s < 1:
        raise SrkitError(f"scale must be at least 1, got {scale!r}")
    return s


def _pair_with_lr(hr_files: Sequence[Path], lr_dir: Path, scale: int, suffix_names: bool) -> list[ImagePair]:
    """Match each HR file with ``lr_dir/<stem>.*`` (or ``<stem>x{scale}.*``)."""
    if not lr_dir.is_dir():
        raise SrkitError(f"LR folder {lr_dir} does not exist")
    by_stem: dict[str, Path] = {}
    for p in lr_dir.iterdir():
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            by_stem.setdefault(p.stem, p)
    pairs = []
    for hr in hr_files:
        names = [f"{hr.stem}x{scale}", hr.stem] if suffix_names else [hr.stem, f"{hr.stem}x{scale}"]
        lr = next((by_stem[n] for n in names if n in by_stem), None)
        if lr is None:
            raise SrkitError(f"no LR file for {hr} in {lr_dir} (expected {names[0]} with an image extension)")
        pairs.append(ImagePair(hr.stem, hr, lr))
    return pairs


def _hr_only(hr_files: Iterable[Path]) -> list[ImagePair]:
    return [ImagePair(p.stem, p, None) for p in hr_files]


def _named_folders(root: Path) -> dict[str, Path]:
    """Lower-case name -> benchmark folder, for every set under ``<root>/benchmark``."""
    bench = root / "benchmark"
    if not bench.is_dir():
        return {}
    return {p.name.lower(): p for p in sorted(bench.iterdir()) if (p / "HR").is_dir()}


def list_named_sets(root: Optional[Union[str, Path]] = None) -> list[str]:
    """The spec names :func:`resolve_pairs` accepts under the data root (those whose folders exist)."""
    root = Path(root) if root is not None else data_root()
    names = []
    for folder in _named_folders(root).values():
        names.append(folder.name)
        if (folder / "LR_bicubic_swinir").is_dir():
            names.append(f"{folder.name}:symmetric")
    if (root / "div2k" / "HR").is_dir():
        names.append("DIV2K")
        if (root / "div2k" / "LR_kernel").is_dir():
            names.append("DIV2KRK")
    return names


_FROM_HR_HINT = "make the LR images from HR instead (srkit eval --lr-from-hr; lr_from_hr=True in Python)"


def resolve_pairs(
    spec: Union[str, Path],
    scale: float,
    root: Optional[Union[str, Path]] = None,
    *,
    lr_from_hr: bool = False,
) -> list[ImagePair]:
    """HR/LR file pairs for a named set or a folder (see the module docstring), sorted by file name.

    Args:
        spec: a set name (``"Set5"``, ``"set14"``, ``"Set5:symmetric"``, ``"DIV2K"``, ``"DIV2KRK"``) or a folder.
        scale: the SR factor; selects the ``X{scale}`` LR folder (a whole number unless ``lr_from_hr``).
        root: the data root for named sets (default :func:`data_root`).
        lr_from_hr: ignore LR files and return the HR images only (``lr_path`` None), for LR made on the fly
            at any scale (LIIF's out-of-distribution protocol); ``scale`` may then be any positive number.

    Raises SrkitError naming the path when a folder is missing or empty or an HR file has no LR file; when
    a named set has no LR files for the scale (or the scale is not whole), the message says to use
    ``lr_from_hr``.
    """
    if lr_from_hr:
        return _resolve_hr_only(spec, scale, root)
    try:
        s = _check_scale(scale)
    except SrkitError as e:
        raise SrkitError(f"{e}; for other scales {_FROM_HR_HINT}") from None
    text = str(spec)
    folder = Path(text).expanduser()
    looks_like_path = isinstance(spec, Path) or os.sep in text or (os.altsep and os.altsep in text) or text.startswith(".")
    if looks_like_path or (folder.is_dir() and ":" not in text):
        return _resolve_folder(folder, s)

    name, _, variant = text.partition(":")
    variant = variant.lower()
    if variant not in ("", "symmetric", "replicate"):
        raise SrkitError(f"unknown variant {variant!r} in {text!r}: use '{name}' or '{name}:symmetric'")
    base = Path(root) if root is not None else data_root()
    key = name.lower()

    if key in ("div2k", "div2krk"):
        if variant:
            raise SrkitError(f"{name} has no '{variant}' variant")
        hr_files = list_images(base / "div2k" / "HR")
        if key == "div2k":
            return _hr_only(hr_files)
        if s != 4:
            raise SrkitError(f"DIV2KRK has LR images for scale 4 only (in {base / 'div2k' / 'LR_kernel'}), not {s}")
        return _pair_with_lr(hr_files, base / "div2k" / "LR_kernel" / f"X{s}", s, suffix_names=False)

    sets = _named_folders(base)
    if key not in sets:
        known = ", ".join(list_named_sets(base)) or "none"
        raise SrkitError(f"unknown image set {text!r}: not a folder, and not a named set under {base} ({known})")
    folder = sets[key]
    hr_files = list_images(folder / "HR")
    if variant == "symmetric":
        lr_dir = folder / "LR_bicubic_swinir" / f"X{s}"
        if not lr_dir.is_dir():
            raise SrkitError(f"{folder.name} has no symmetric-border LR files for x{s} (no folder {lr_dir})")
        return _pair_with_lr(hr_files, lr_dir, s, suffix_names=True)
    lr_dir = folder / "LR_bicubic" / f"X{s}"
    if not lr_dir.is_dir():
        raise SrkitError(f"{folder.name} has no LR files for x{s} (no folder {lr_dir}); {_FROM_HR_HINT}")
    return _pair_with_lr(hr_files, lr_dir, s, suffix_names=False)


def _resolve_hr_only(spec: Union[str, Path], scale: float, root: Optional[Union[str, Path]]) -> list[ImagePair]:
    """The HR images of a set or folder, without LR files (for LR made from HR at any positive scale)."""
    if isinstance(scale, bool) or not isinstance(scale, Real) or not float(scale) > 0 or float(scale) == float("inf"):
        raise SrkitError(f"scale must be a positive number, got {scale!r}")
    text = str(spec)
    folder = Path(text).expanduser()
    looks_like_path = isinstance(spec, Path) or os.sep in text or (os.altsep and os.altsep in text) or text.startswith(".")
    if looks_like_path or (folder.is_dir() and ":" not in text):
        if not folder.is_dir():
            raise SrkitError(f"image folder {folder} does not exist")
        hr_dir = _child_ci(folder, "HR")
        return _hr_only(list_images(hr_dir if hr_dir is not None else folder))
    name, _, variant = text.partition(":")
    if variant.lower() not in ("", "symmetric", "replicate"):
        raise SrkitError(f"unknown variant {variant!r} in {text!r}: use '{name}' or '{name}:symmetric'")
    base = Path(root) if root is not None else data_root()
    key = name.lower()
    if key == "div2krk":
        raise SrkitError("DIV2KRK is defined by its blurred LR files; LR made from HR is plain DIV2K (use 'DIV2K')")
    if key == "div2k":
        return _hr_only(list_images(base / "div2k" / "HR"))
    sets = _named_folders(base)
    if key not in sets:
        known = ", ".join(list_named_sets(base)) or "none"
        raise SrkitError(f"unknown image set {text!r}: not a folder, and not a named set under {base} ({known})")
    return _hr_only(list_images(sets[key] / "HR"))


def _resolve_folder(folder: Path, scale: int) -> list[ImagePair]:
    if not folder.is_dir():
        raise SrkitError(f"image folder {folder} does not exist")
    hr_dir = _child_ci(folder, "HR")
    if hr_dir is None:
        return _hr_only(list_images(folder))  # a plain folder of HR images
    hr_files = list_images(hr_dir)
    lr_root = _child_ci(folder, "LR_bicubic")
    if lr_root is None:
        return _hr_only(hr_files)
    lr_dir = _child_ci(lr_root, f"X{scale}")
    if lr_dir is None:
        return _hr_only(hr_files)
    return _pair_with_lr(hr_files, lr_dir, scale, suffix_names=False)


def train_images(names: Union[str, Sequence[str]] = ("T91", "BSD200"), root: Optional[Union[str, Path]] = None) -> list[Path]:
    """HR training images of the named sets (``<root>/train/<name>/HR``, case-insensitive), or of folders.

    ``names`` may also hold ``"DIV2K"`` (the 12 DIV2K HR images) and folder paths (their ``HR/``
    sub-folder if present, else the folder itself). Returns the files in the given set order.
    """
    if isinstance(names, (str, Path)):
        names = [names]
    files: list[Path] = []
    base: Optional[Path] = Path(root) if root is not None else None
    for name in names:
        text = str(name)
        p = Path(text).expanduser()
        if isinstance(name, Path) or os.sep in text or p.is_dir():
            hr = _child_ci(p, "HR")
            files += list_images(hr if hr is not None else p)
            continue
        if base is None:
            base = data_root()
        if text.lower() == "div2k":
            files += list_images(base / "div2k" / "HR")
            continue
        folder = _child_ci(base / "train", text)
        if folder is None:
            avail = sorted(q.name for q in (base / "train").iterdir() if q.is_dir()) if (base / "train").is_dir() else []
            raise SrkitError(
                f"unknown training set {text!r}: no folder {base / 'train' / text} (available: {', '.join(avail) or 'none'})"
            )
        hr = _child_ci(folder, "HR")
        files += list_images(hr if hr is not None else folder)
    return files
