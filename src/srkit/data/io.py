"""Image files to numpy arrays and back, and arrays to srkit's float tensors.

Arrays are HWC numpy arrays, RGB channel order. What each kind of file becomes with ``read_image``:

===============================  ==================================  =====================================
file                             ``mode="rgb"`` (default)            ``mode="unchanged"``
===============================  ==================================  =====================================
8-bit RGB PNG / JPEG / BMP       uint8 (H, W, 3)                     uint8 (H, W, 3)
8-bit RGBA PNG / TIFF / WebP     uint8 (H, W, 3), alpha dropped      uint8 (H, W, 4)
                                   (not composited)
8-bit grayscale (PNG, JPEG, BMP) uint8 (H, W, 3), gray replicated    uint8 (H, W, 1)
8-bit gray + alpha (LA)          uint8 (H, W, 3)                     uint8 (H, W, 4), gray replicated
palette (P, 1-8 bit)             uint8 (H, W, 3)                     uint8 (H, W, 3), or (H, W, 4) when
                                                                       the palette has transparency
1-bit (bilevel)                  uint8 (H, W, 3), values 0 or 255    uint8 (H, W, 1), values 0 or 255
CMYK JPEG, YCbCr, LAB, HSV       uint8 (H, W, 3), converted to RGB   uint8 (H, W, 3), converted to RGB
16-bit grayscale PNG             uint16 (H, W, 3), replicated        uint16 (H, W, 1)
16-bit RGB / RGBA PNG            uint16 (H, W, 3)                    uint16 (H, W, 3) / (H, W, 4)
16-bit gray + alpha PNG          uint16 (H, W, 3)                    uint16 (H, W, 4), gray replicated
===============================  ==================================  =====================================

All 16 bits of 16-bit PNGs are kept (Pillow alone reduces 16-bit colour PNGs to 8 bits; this module
recovers the low bytes through Pillow's own decoder). TIFF and other formats are decoded as Pillow
decodes them: 16-bit colour TIFFs come back as 8 bits, 32-bit integer images are accepted only when
their values fit uint16, float images are refused. An EXIF orientation tag is applied, so the array
is the image as a viewer shows it. ``load_image`` also returns the alpha flag, the bit depth, the
embedded ICC profile and the original Pillow mode, which the upscaler needs to write a faithful result.

Every failure to read (missing file, directory, truncated or corrupt data, not an image, more pixels
than the limit) raises :class:`srkit.errors.ImageReadError` with one line naming the file. The pixel
limit guards against decompression bombs: by default 178,956,970 pixels (Pillow's own hard limit);
raise it with the ``max_pixels`` argument or the ``SRKIT_MAX_PIXELS`` environment variable (``0`` or
``none`` disables the check).

``write_image`` chooses the format from the extension (.png, .jpg/.jpeg, .bmp, .tif/.tiff, .webp) and
writes atomically: the bytes are encoded in memory, written to a temporary file in the destination
folder, then moved over the destination with ``os.replace``; on any error the destination is untouched.
16-bit arrays can be written only to PNG (any channel count) and TIFF (grayscale); alpha cannot be
written to JPEG or BMP (Pillow reads 32-bit BMPs back without it). JPEG and WebP are lossy, and WebP
has no grayscale (a gray image reads back as RGB).

``PngStreamWriter`` writes a PNG strip by strip (streaming zlib, atomic like ``write_image``) for images
too large to hold in memory; ``srkit upscale`` uses it for very large LIIF outputs.

``to_tensor`` / ``to_array`` convert between those arrays and float32 NCHW tensors in [0, 1].
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

from ..errors import ImageReadError, ImageTooLargeError, SrkitError

if TYPE_CHECKING:  # pragma: no cover
    import torch

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's DecompressionBombError threshold (2 * MAX_IMAGE_PIXELS)
MAX_PIXELS_ENV = "SRKIT_MAX_PIXELS"

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}

# Pillow's pixel limit is a module global; it is switched off only for the instant of Image.open, under
# this lock, because srkit applies its own limit (which the caller can raise) before decoding.
_OPEN_LOCK = threading.Lock()


@dataclass
class ImageFile:
    """A decoded image plus what is needed to write a result faithfully.

    Attributes:
        array: HWC uint8 or uint16, 1, 3 or 4 channels (``read_image(mode="unchanged")``).
        has_alpha: whether ``array`` has a 4th (alpha) channel.
        bit_depth: 8 or 16, the sample size of ``array``.
        icc_profile: the embedded ICC profile bytes, or None.
        mode: the file's Pillow mode before conversion ("RGB", "L", "P", "I;16", "RGB;16", "RGBA;16",
            "LA;16", ...; the ``;16`` colour modes are srkit's names for 16-bit PNGs Pillow lacks).
        path: the file it came from.
    """

    array: np.ndarray
    has_alpha: bool
    bit_depth: int
    icc_profile: Optional[bytes]
    mode: str
    path: Path

    @property
    def height(self) -> int:
        return int(self.array.shape[0])

    @property
    def width(self) -> int:
        return int(self.array.shape[1])


def _pixel_limit(max_pixels: Optional[int]) -> Optional[int]:
    if max_pixels is not None:
        return None if max_pixels <= 0 else int(max_pixels)
    env = os.environ.get(MAX_PIXELS_ENV)
    if env is None or env.strip() == "":
        return DEFAULT_MAX_PIXELS
    text = env.strip().lower().replace("_", "")
    if text in ("none", "0", "off"):
        return None
    try:
        return int(float(text))
    except ValueError:
        raise SrkitError(f"{MAX_PIXELS_ENV}={env!r} is not a number of pixels (or 'none')") from None


def _open(path: Path, max_pixels: Optional[int]):
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise ImageReadError(f"cannot read image {path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"cannot read image {path}: it is a directory")
    limit = _pixel_limit(max_pixels)
    try:
        with _OPEN_LOCK:
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                im = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError:
        raise ImageReadError(f"cannot read image {path}: not a recognised image file") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise ImageReadError(f"cannot read image {path}: corrupt or unreadable header ({e})") from None
    w, h = im.size
    if limit is not None and w * h > limit:
        im.close()
        raise ImageTooLargeError(
            f"cannot read image {path}: {w}x{h} = {w * h:,} pixels exceeds the limit of {limit:,} "
            f"(a guard against decompression bombs); raise it with max_pixels=... or "
            f"{MAX_PIXELS_ENV}=<pixels> ({MAX_PIXELS_ENV}=none disables it)"
        )
    return im


def _decode(im, path: Path, rawmode: Optional[str] = None) -> np.ndarray:
    """Decode an opened Pillow image (optionally with a replaced raw mode) to a numpy array."""
    try:
        if rawmode is not None:
            im.tile = [t._replace(args=rawmode) for t in im.tile]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
        return np.asarray(im)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError) as e:
        raise ImageReadError(f"cannot read image {path}: truncated or corrupt data ({e})") from None


_PNG16_RAWMODES = {"RGB;16B": "RGB;16", "RGBA;16B": "RGBA;16", "LA;16B": "LA;16"}


def _read_png16_colour(im, path: Path, max_pixels: Optional[int]) -> np.ndarray:
    """Full-precision decode of a 16-bit colour PNG through Pillow's own inflate + unfilter.

    Pillow unpacks only the high byte of each 16-bit sample for these modes. Decoding the same data a
    second time with the little-endian raw mode picks the other byte of every pair, i.e. the low byte
    (the PNG filter step works on whole pixels, so it is unaffected by which byte is kept).
    """
    raw = im.tile[0].args
    if raw == "LA;16B":
        # 4 bytes per pixel, like 8-bit RGBA: decode them verbatim as (Ghi, Glo, Ahi, Alo).
        b = _decode(im, path, "RGBA").astype(np.uint16)
        gray = (b[..., 0] << 8) | b[..., 1]
        alpha = (b[..., 2] << 8) | b[..., 3]
        return np.stack([gray, gray, gray, alpha], axis=-1)
    hi = _decode(im, path).astype(np.uint16)
    with _open(path, max_pixels) as im2:
        lo = _decode(im2, path, raw.replace(";16B", ";16L")).astype(np.uint16)
    return (hi << 8) | lo


def _orientation(im) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block must not make an image unreadable
        return 1


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    # EXIF orientation tag values -> the transform that shows the image upright.
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.transpose(1, 0, 2)
    elif orientation == 6:
        a = np.rot90(a, k=-1)
    elif orientation == 7:
        a = np.rot90(a.transpose(1, 0, 2), k=2)
    elif orientation == 8:
        a = np.rot90(a, k=1)
    return np.ascontiguousarray(a)


def load_image(path: PathLike, max_pixels: Optional[int] = None) -> ImageFile:
    """Read an image file keeping its channels and bit depth (see the module docstring table).

    Returns an :class:`ImageFile` whose ``array`` is HWC uint8/uint16 with 1, 3 or 4 channels.
    Raises ImageReadError (naming the file) when it cannot be read.
    """
    path = Path(path)
    with _open(path, max_pixels) as im:
        mode = im.mode
        # Look at the raw mode before anything decodes the image (getexif() does, for PNG).
        raw = im.tile[0].args if (im.format == "PNG" and im.tile) else None
        if isinstance(raw, str) and raw in _PNG16_RAWMODES:
            mode = _PNG16_RAWMODES[raw]
            a = _read_png16_colour(im, path, max_pixels)
        else:
            a = _decode_mode(im, path)
        icc = im.info.get("icc_profile") or None
        orientation = _orientation(im)
    if a.ndim == 2:
        a = a[:, :, None]
    a = _apply_orientation(a, orientation)
    return ImageFile(
        array=a,
        has_alpha=a.shape[-1] == 4,
        bit_depth=16 if a.dtype == np.uint16 else 8,
        icc_profile=icc,
        mode=mode,
        path=path,
    )


def _decode_mode(im, path: Path) -> np.ndarray:
    """Decode a Pillow image of any mode to uint8/uint16 with 1, 3 or 4 channels."""
    mode = im.mode
    if mode in ("RGB", "RGBA", "L"):
        return _decode(im, path)
    if mode.startswith("I;16"):
        return _decode(im, path).astype(np.uint16)
    _decode(im, path)  # decode first so truncation is reported as such, not as a conversion error
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode == "I":
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageReadError(f"cannot read image {path}: 32-bit integer samples outside 0..65535")
        return a.astype(np.uint16)
    if mode == "F":
        raise ImageReadError(f"cannot read image {path}: floating-point images are not supported")
    if mode in ("LA", "La", "PA", "RGBa"):
        return np.asarray(im.convert("RGBA"))
    if mode == "P":
        target = "RGBA" if "transparency" in im.info else "RGB"
        return np.asarray(im.convert(target))
    try:
        return np.asarray(im.convert("RGB"))  # CMYK, YCbCr, LAB, HSV, RGBX
    except (ValueError, OSError) as e:
        raise ImageReadError(f"cannot read image {path}: unsupported mode {mode} ({e})") from None


def read_image(path: PathLike, mode: str = "rgb", max_pixels: Optional[int] = None) -> np.ndarray:
    """Read an image file as an HWC numpy array (uint8, or uint16 for 16-bit files).

    Args:
        path: the file.
        mode: ``"rgb"``: always 3 channels (gray replicated, alpha dropped, palette/CMYK converted);
            ``"unchanged"``: 1 (H, W, 1), 3 or 4 channels, as the table in the module docstring says.
        max_pixels: refuse images with more pixels (default: ``$SRKIT_MAX_PIXELS`` or 178,956,970).
    """
    if mode not in ("rgb", "unchanged"):
        raise SrkitError(f"read_image: mode must be 'rgb' or 'unchanged', got {mode!r}")
    a = load_image(path, max_pixels=max_pixels).array
    if mode == "rgb":
        if a.shape[-1] == 1:
            a = np.repeat(a, 3, axis=-1)
        elif a.shape[-1] == 4:
            a = np.ascontiguousarray(a[..., :3])
    return a


# ---------------------------------------------------------------------------------------------- writing


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_paeth_rows(rows: np.ndarray, bpp: int) -> bytes:
    """PNG filter type 4 (Paeth) applied to every scanline, with the filter-type bytes.

    One filter for all rows: on photographs it compresses within a few per cent of a per-row adaptive choice
    and costs a fraction of the time (measured on a DIV2K image).
    """
    x = rows
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    up = np.zeros_like(x)
    up[1:] = x[:-1]
    upleft = np.zeros_like(x)
    upleft[1:, bpp:] = x[:-1, :-bpp]
    a, b, c = left.astype(np.int16), up.astype(np.int16), upleft.astype(np.int16)
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)  # |p - a|, |p - b|, |p - c|, p = a + b - c
    pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    out = np.empty((x.shape[0], x.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = 4
    np.subtract(x, pred, out=out[:, 1:])  # uint8 arithmetic wraps modulo 256, as PNG wants
    return out.tobytes()


def _encode_png16(a: np.ndarray, icc_profile: Optional[bytes], compress_level: int = 6) -> bytes:
    """A minimal 16-bit PNG encoder (gray, RGB or RGBA), which Pillow lacks for colour images."""
    h, w, c = a.shape
    colour_type = {1: 0, 3: 2, 4: 6}[c]
    rows = np.ascontiguousarray(a, dtype=">u2").view(np.uint8).reshape(h, w * c * 2)
    parts = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))]
    if icc_profile:
        parts.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    parts.append(_png_chunk(b"IDAT", zlib.compress(_png_paeth_rows(rows, 2 * c), compress_level)))
    parts.append(_png_chunk(b"IEND", b""))
    return b"".join(parts)


def _encode(
    a: np.ndarray, fmt: str, path: Path, icc_profile: Optional[bytes], quality: int, compress_level: int
) -> bytes:
    from PIL import Image

    c = a.shape[-1]
    if a.dtype == np.uint16:
        if fmt == "PNG":
            return _encode_png16(a, icc_profile, compress_level)
        if fmt == "TIFF" and c == 1:
            im = Image.fromarray(np.ascontiguousarray(a[..., 0]))  # uint16 2-D -> Pillow "I;16"
        else:
            raise SrkitError(
                f"cannot write {path}: 16-bit {'gray' if c == 1 else 'colour'} images can be written "
                f"as PNG{' or TIFF' if c == 1 else ''} only; use a .png name or convert to uint8"
            )
    else:
        if fmt in ("JPEG", "BMP") and c == 4:
            # (Pillow writes a 32-bit BMP but reads it back without alpha, so BMP is refused as well.)
            raise SrkitError(f"cannot write {path}: {fmt} cannot keep an alpha channel; use .png or drop the alpha")
        im = Image.fromarray(np.ascontiguousarray(a[..., 0] if c == 1 else a))  # uint8 -> "L", "RGB", "RGBA"
    kwargs = {}
    if icc_profile and fmt in ("PNG", "JPEG", "TIFF", "WEBP"):
        kwargs["icc_profile"] = icc_profile
    if fmt == "JPEG":
        kwargs.update(quality=quality, subsampling=0)  # 4:4:4: SR output should keep its colour detail
    elif fmt == "WEBP":
        kwargs.update(quality=quality)
    elif fmt == "PNG":
        kwargs.update(compress_level=compress_level)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


_UMASK: Optional[int] = None


def _default_file_mode() -> int:
    global _UMASK
    if _UMASK is None:  # read once: os.umask can only be read by setting it
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def write_image(
    path: PathLike,
    array: np.ndarray,
    icc_profile: Optional[bytes] = None,
    quality: int = 95,
    compress_level: int = 6,
) -> Path:
    """Write an HWC uint8/uint16 array (1, 3 or 4 channels; or HW) to an image file, atomically.

    The format follows the extension: .png, .jpg/.jpeg (quality ``quality``, 4:4:4), .bmp, .tif/.tiff,
    .webp (quality ``quality``). uint16 is written as 16-bit PNG (gray, RGB or RGBA) or 16-bit grayscale
    TIFF. ``compress_level`` is the PNG zlib level, 0-9 (1 is about 3x faster than 6 for ~12 % larger
    files). The ICC profile, if given, is embedded (PNG, JPEG, TIFF, WebP). The parent folder must exist.
    Returns the path.
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SrkitError(
            f"cannot write {path}: unknown image extension {path.suffix!r} (use one of {', '.join(_WRITE_FORMATS)})"
        )
    if not isinstance(array, np.ndarray):
        raise SrkitError(f"cannot write {path}: expected a numpy array, got {type(array).__name__} (see to_array)")
    a = array[:, :, None] if array.ndim == 2 else array
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        raise SrkitError(f"cannot write {path}: expected an HxWxC array with C in 1, 3, 4, got shape {array.shape}")
    if a.dtype not in (np.uint8, np.uint16):
        raise SrkitError(
            f"cannot write {path}: expected uint8 or uint16 samples, got {a.dtype} (convert with to_array)"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SrkitError(f"cannot write {path}: folder {parent} does not exist")
    if not (isinstance(compress_level, int) and 0 <= compress_level <= 9):
        raise SrkitError(f"write_image: compress_level must be 0..9, got {compress_level!r}")
    data = _encode(a, fmt, path, icc_profile, quality, compress_level)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


class PngStreamWriter:
    """Write a PNG image strip by strip, for images too large to hold in memory at once.

    Rows go through the same Paeth filter as :func:`write_image`'s 16-bit encoder (the previous strip's
    last row is kept for the filter) and a streaming ``zlib`` compressor; compressed data is written out in
    ``IDAT`` chunks of about 1 MiB, so memory stays at one strip plus the compressor's window. The file is
    written atomically: into a temporary file in the destination folder, renamed over ``path`` by
    :meth:`close` once all ``height`` rows have arrived; :meth:`abort` (or leaving a ``with`` block with an
    exception) removes the temporary file and leaves ``path`` untouched.

    Args:
        path: destination ``.png`` file (its folder must exist).
        height, width: image size in pixels.
        channels: 1 (gray), 3 (RGB) or 4 (RGBA).
        dtype: ``np.uint8`` or ``np.uint16`` samples.
        icc_profile: embedded as an ``iCCP`` chunk when given.
        compress_level: zlib level 0-9.

    ``write_rows(rows)`` takes HWC arrays (n, width, channels) (or (n, width) for gray) of ``dtype``.
    """

    _IDAT_BYTES = 1 << 20

    def __init__(self, path: PathLike, height: int, width: int, channels: int, dtype=np.uint8,
                 icc_profile: Optional[bytes] = None, compress_level: int = 6) -> None:
        path = Path(path)
        if path.suffix.lower() != ".png":
            raise SrkitError(f"cannot stream {path}: strip-by-strip writing supports PNG only; use a .png name")
        if channels not in (1, 3, 4):
            raise SrkitError(f"cannot write {path}: channels must be 1, 3 or 4, got {channels}")
        dtype = np.dtype(dtype)
        if dtype not in (np.uint8, np.uint16):
            raise SrkitError(f"cannot write {path}: samples must be uint8 or uint16, got {dtype}")
        if not (isinstance(compress_level, int) and 0 <= compress_level <= 9):
            raise SrkitError(f"PngStreamWriter: compress_level must be 0..9, got {compress_level!r}")
        if height < 1 or width < 1 or height >= 2**31 or width >= 2**31:
            raise SrkitError(f"cannot write {path}: PNG sides must be 1 to 2^31 - 1, got {width}x{height}")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise SrkitError(f"cannot write {path}: folder {parent} does not exist")
        self.path, self.height, self.width, self.channels, self.dtype = path, int(height), int(width), channels, dtype
        self.rows_written = 0
        self._bpp = channels * dtype.itemsize  # bytes per pixel, the Paeth filter's left distance
        self._prev: Optional[np.ndarray] = None  # last row written (bytes), the "up" row of the next strip
        self._zip = zlib.compressobj(compress_level)
        self._pending: list[bytes] = []
        self._pending_len = 0
        fd, self._tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
        self._file = os.fdopen(fd, "wb")
        try:
            colour_type = {1: 0, 3: 2, 4: 6}[channels]
            head = [b"\x89PNG\r\n\x1a\n",
                    _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8 * dtype.itemsize, colour_type, 0, 0, 0))]
            if icc_profile:
                head.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
            self._file.write(b"".join(head))
        except BaseException:
            self.abort()
            raise

    def write_rows(self, rows: np.ndarray) -> None:
        """Append the next ``n`` rows, (n, width, channels) or (n, width) for gray, of the writer's dtype."""
        if self._file is None:
            raise SrkitError(f"cannot write rows to {self.path}: the writer is closed")
        a = rows[:, :, None] if rows.ndim == 2 else rows
        if a.ndim != 3 or a.shape[1:] != (self.width, self.channels) or a.dtype != self.dtype:
            raise SrkitError(f"{self.path}: expected rows of shape (n, {self.width}, {self.channels}) {self.dtype}, "
                             f"got {rows.shape} {rows.dtype}")
        n = a.shape[0]
        if self.rows_written + n > self.height:
            raise SrkitError(f"{self.path}: {self.rows_written + n} rows written to an image of height {self.height}")
        if n == 0:
            return
        raw = np.ascontiguousarray(a, dtype=self.dtype.newbyteorder(">")).view(np.uint8).reshape(n, -1)
        if self._prev is not None:  # the filter of the strip's first row looks at the previous strip's last row
            filtered = _png_paeth_rows(np.concatenate([self._prev, raw]), self._bpp)
            filtered = filtered[raw.shape[1] + 1 :]
        else:
            filtered = _png_paeth_rows(raw, self._bpp)
        self._prev = raw[-1:].copy()
        self._emit(self._zip.compress(filtered))
        self.rows_written += n

    def _emit(self, data: bytes, final: bool = False) -> None:
        if data:
            self._pending.append(data)
            self._pending_len += len(data)
        if self._pending_len >= self._IDAT_BYTES or (final and self._pending_len):
            assert self._file is not None
            self._file.write(_png_chunk(b"IDAT", b"".join(self._pending)))
            self._pending, self._pending_len = [], 0

    def close(self) -> Path:
        """Finish the file and move it over ``path``; all ``height`` rows must have been written."""
        if self._file is None:
            raise SrkitError(f"{self.path}: the writer is already closed")
        if self.rows_written != self.height:
            self.abort()
            raise SrkitError(f"{self.path}: only {self.rows_written} of {self.height} rows were written; "
                             f"the file was not created")
        try:
            self._emit(self._zip.flush(), final=True)
            self._file.write(_png_chunk(b"IEND", b""))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.chmod(self._tmp, _default_file_mode())
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; ``path`` is left as it was."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        try:
            os.unlink(self._tmp)
        except OSError:
            pass

    def __enter__(self) -> "PngStreamWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif self._file is not None:
            self.close()


# ---------------------------------------------------------------------------------------------- tensors


def to_tensor(array: np.ndarray) -> "torch.Tensor":
    """HWC (or HW) array -> float32 tensor (1, C, H, W) in [0, 1].

    uint8 is divided by 255, uint16 by 65535; float arrays are taken as already in [0, 1] (not clipped).
    """
    import torch

    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise SrkitError(f"to_tensor: expected an HxWxC or HxW array, got shape {a.shape}")
    if a.dtype == np.uint8:
        scale = 255.0
    elif a.dtype == np.uint16:
        scale = 65535.0
    elif np.issubdtype(a.dtype, np.floating):
        scale = None
    else:
        raise SrkitError(f"to_tensor: unsupported dtype {a.dtype} (expected uint8, uint16 or float)")
    # one float32 copy: owned and writable whatever the input (PIL arrays are read-only)
    t = torch.from_numpy(np.array(a.transpose(2, 0, 1), dtype=np.float32, order="C"))
    if scale is not None:
        t.div_(scale)
    return t.unsqueeze(0)


def to_array(tensor: "torch.Tensor", dtype=np.uint8) -> np.ndarray:
    """Float tensor (1, C, H, W) or (C, H, W) in [0, 1] -> HWC numpy array.

    For uint8/uint16 the values are clamped to [0, 1], multiplied by 255/65535 and rounded half to even
    (``torch.round``; the same as BasicSR's ``(x * 255).round()`` in numpy), so
    ``to_array(to_tensor(a))`` gives back ``a`` exactly. For a float dtype, the values are returned as
    they are (no clamping).
    """
    import torch

    t = tensor.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise SrkitError(f"to_array: expected a batch of one image, got shape {tuple(t.shape)}")
        t = t[0]
    if t.dim() != 3:
        raise SrkitError(f"to_array: expected a (1, C, H, W) or (C, H, W) tensor, got shape {tuple(t.shape)}")
    dtype = np.dtype(dtype)
    t = t.to(device="cpu", dtype=torch.float32)
    if dtype in (np.uint8, np.uint16):
        peak = 255.0 if dtype == np.uint8 else 65535.0
        t = torch.round(torch.nan_to_num(t, nan=0.0).clamp(0.0, 1.0) * peak)
        out = t.permute(1, 2, 0).numpy().astype(dtype)
    elif np.issubdtype(dtype, np.floating):
        out = t.permute(1, 2, 0).numpy().astype(dtype)
    else:
        raise SrkitError(f"to_array: dtype must be uint8, uint16 or a float type, got {dtype}")
    return np.ascontiguousarray(out)
