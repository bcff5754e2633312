"""The HTTP server behind ``srkit serve``: a browser page and a JSON/PNG API over :class:`srkit.Upscaler`.

Standard library only (``http.server.ThreadingHTTPServer``); torch and the model code are imported the first
time a model is needed, so importing this module is instant.

Endpoints (see ``docs/web.md``):

* ``GET /``: the page (one self-contained HTML document, :mod:`srkit.web.page`).
* ``GET /api/health``: ``{"status": "ok", ...}``.
* ``GET /api/models``: the models this server offers and their descriptor facts.
* ``POST /api/upscale?model=NAME&scale=S``: the image as the raw body or as the ``file`` field of a
  ``multipart/form-data`` body; answers ``image/png`` with ``X-Srkit-*`` headers.

Errors are JSON ``{"error": "one line"}`` with 400 (unreadable image, bad parameter), 404 (unknown model or
path), 405 (wrong method), 411 (no Content-Length), 413 (upload, input pixels or output pixels above the
limits), 422 (a scale or an input the model cannot take, reference-based models), 503 (too many requests
waiting, out of memory) or 500 (anything else; the traceback goes to stderr).

Resources are bounded: the upload size is checked from ``Content-Length`` before any byte of the body is
read; the decoder refuses images above ``max_pixels`` before decoding them (srkit's decompression-bomb guard);
a request whose output would exceed ``max_output_pixels`` is refused before inference; one image is upscaled
at a time (a lock), at most ``max_queue`` requests wait for it; loaded models sit in a small LRU cache;
uploads and results go through a temporary folder that is removed after each request, and the PNG is sent
from disk in chunks.
"""

from __future__ import annotations

import collections
import contextlib
import email.message
import email.utils
import json
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, quote, urlsplit

from ..errors import SrkitError

DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024**2
"""Largest request body accepted (50 MiB)."""
DEFAULT_MAX_PIXELS = 25_000_000
"""Largest input image, in pixels (e.g. 5000 x 5000); larger files are refused before decoding."""
DEFAULT_MAX_OUTPUT_PIXELS = 50_000_000
"""Largest result, in pixels (a 2040x1356 DIV2K image at x4 is 44 million); larger requests get 413."""
DEFAULT_CACHE_SIZE = 2
"""Models kept loaded at once (least recently used ones are dropped)."""
DEFAULT_MAX_QUEUE = 4
"""Upscale requests allowed to wait while another one runs; more get 503."""

_CHUNK = 1 << 16
_DRAIN_BYTES = 64 * 1024**2  # an unread body up to this size is read and dropped so the client sees the answer
_DRAIN_SECONDS = 10.0
_HEADER_SAFE = "-._~+!$&'()*,;=:@/ "  # header values are latin-1; a model name beyond ASCII is percent-encoded
BICUBIC = "bicubic"
"""Name of the built-in baseline: MATLAB bicubic (:func:`srkit.imresize`), as ``srkit eval --model bicubic``."""
_NO_REFERENCE = ("{name} is reference-based (it needs a reference image as well as the input); the web app does "
                 "not take a reference image yet: use `srkit upscale INPUT --ref REF -o OUT --model {name}`")


class HttpError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.headers = headers or {}


# ---------------------------------------------------------------------------------------------- models


@dataclass
class ModelEntry:
    """One model the server offers: what ``/api/models`` says about it and where to load it from."""

    name: str
    """The identifier used in ``?model=`` (zoo name, or the stem of a model file given with ``--model``)."""
    target: str
    """What :func:`srkit.inference.load` is given (zoo name or file path)."""
    source: str
    """``"zoo"``, ``"file"`` or ``"builtin"`` (bicubic)."""
    arch: str
    descriptor: Any  # srkit.descriptor.ModelDescriptor
    params: int | None
    metrics: Any
    description: str

    @property
    def default_scale(self) -> float:
        """The scale used when a request gives none; the same rule as :attr:`Upscaler.default_scale`."""
        d = self.descriptor
        if d.scale_range is not None:
            lo, hi = d.scale_range
            return float(min(max(4.0, lo), hi))
        return float(max(d.scales)) if d.scales else 4.0

    def as_json(self) -> dict[str, Any]:
        d = self.descriptor
        note = None
        if d.needs_ref:
            note = "reference-based: the web app does not take a reference image yet"
        elif d.fixed_size is not None:
            note = f"takes exactly {d.fixed_size}x{d.fixed_size} input images"
        return {
            "name": self.name,
            "source": self.source,
            "arch": self.arch,
            "scales": list(d.scales),
            "scale_range": list(d.scale_range) if d.scale_range is not None else None,
            "default_scale": self.default_scale,
            "needs_ref": bool(d.needs_ref),
            "fixed_size": d.fixed_size,
            "multiple_of": d.multiple_of,
            "min_size": d.min_size,
            "params": self.params,
            "metrics": self.metrics,
            "description": self.description,
            "usable": not d.needs_ref,
            "note": note,
        }


def describe_model(target: str, name: str | None = None) -> ModelEntry:
    """Read a zoo name or model file's metadata (no weights) into a :class:`ModelEntry`.

    Raises :class:`SrkitError` for a missing/unknown model or a file that is not an srkit model file.
    """
    from .. import archs
    from ..cli.models import format_metrics
    from ..model_file import FOREIGN_SUFFIXES, count_params, descriptor_from_dict, read_metadata, resolve_model_path

    path = resolve_model_path(target)
    if path.suffix.lower() in FOREIGN_SUFFIXES:
        raise SrkitError(f"{path} is a foreign checkpoint; convert it first with `srkit convert {path} --arch NAME "
                         f"-o MODEL.safetensors` and serve that file")
    doc = read_metadata(path)
    arch = doc["arch"]
    kwargs = dict(doc.get("arch_kwargs") or {})
    try:  # as load_model does: the registry's descriptor, else what the file recorded
        descriptor = archs.describe(arch, **kwargs)
    except (SrkitError, TypeError, ValueError):
        if "descriptor" not in doc:
            raise
        descriptor = descriptor_from_dict(doc["descriptor"])
    try:
        params = count_params(path)
    except Exception:  # a header we cannot count must not hide the model
        params = None
    is_file = Path(target).exists()  # resolve_model_path prefers an existing file over a zoo name
    if name is None:
        name = path.stem if is_file else str(target).removesuffix(".safetensors")
    if descriptor.scale_range is not None:
        scales = "any scale x{:g}-x{:g}".format(*descriptor.scale_range)
    else:
        scales = "x" + "/x".join(map(str, descriptor.scales)) if descriptor.scales else "no scales listed"
    parts = [f"{arch}, {scales}"]
    if params is not None:
        parts.append(f"{params / 1e6:.2f}M parameters" if params >= 1e6 else f"{params / 1e3:.0f}k parameters")
    metrics = doc.get("metrics")
    if metrics:
        parts.append(format_metrics(metrics, limit=80))
    return ModelEntry(
        name=name,
        target=str(path) if is_file else str(target),
        source="file" if is_file else "zoo",
        arch=arch,
        descriptor=descriptor,
        params=params,
        metrics=metrics,
        description="; ".join(parts),
    )


def bicubic_entry() -> ModelEntry:
    """The built-in ``bicubic`` model: MATLAB bicubic upscaling, the baseline (and the page's comparison)."""
    from ..descriptor import ModelDescriptor

    return ModelEntry(
        name=BICUBIC, target=BICUBIC, source="builtin", arch=BICUBIC,
        descriptor=ModelDescriptor(arch=BICUBIC, scale_range=(1.0, 64.0), receptive_field=2, supports_half=False,
                                   supports_bfloat16=False),
        params=0, metrics=None,
        description="MATLAB bicubic (srkit.imresize), the baseline SR models are compared with; any scale x1-x64",
    )


def _bicubic_upscaler(entry: ModelEntry) -> Any:
    """An :class:`Upscaler` whose "network" is MATLAB bicubic, so gray, alpha and 16-bit are handled as for
    any model. Untiled on the CPU: the result is exactly ``imresize`` of the whole float image."""
    import torch

    from ..data.resize import imresize
    from ..inference import Upscaler

    class Bicubic(torch.nn.Module):
        def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
            return imresize(x, size=size)

    return Upscaler(Bicubic(), entry.descriptor, device="cpu", tile=0, name=entry.name)


def collect_models(targets: list[str] | None = None, bicubic: bool = True) -> list[ModelEntry]:
    """The models to offer: ``targets`` (zoo names or model files, each checked now), or the whole zoo; then
    the built-in ``bicubic`` (when ``bicubic`` is true and no other model has that name).

    With explicit targets any unreadable one raises :class:`SrkitError` (the server does not start); zoo
    models that cannot be read are skipped with a warning on stderr. Names that collide (two files with the
    same stem) get ``-2``, ``-3`` appended.
    """
    entries: list[ModelEntry] = []
    names: set[str] = set()

    def unique(base: str) -> str:
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.add(name)
        return name

    if targets:
        for t in targets:
            e = describe_model(t)
            e.name = unique(e.name)
            entries.append(e)
    else:
        from .. import zoo

        for name in zoo.list_models():
            try:
                e = describe_model(name)
            except SrkitError as err:
                print(f"srkit serve: warning: skipping zoo model {name}: {err}", file=sys.stderr)
                continue
            e.name = unique(name)
            entries.append(e)
        if not entries:
            raise SrkitError("no models to serve: the zoo is empty; name model files with --model")
    if bicubic and BICUBIC not in names:
        entries.append(bicubic_entry())
    return entries


# ---------------------------------------------------------------------------------------------- the app


@dataclass
class ServerConfig:
    """Limits and inference settings of a server (the ``srkit serve`` flags)."""

    device: str | None = None
    """Where models run (``cpu``, ``cuda``, ``cuda:N``); None: CUDA when available."""
    tile: int | None = None
    """Fixed tile side in input pixels (0: untiled); None: from the memory budget."""
    max_memory: int | None = None
    """Memory budget in bytes for one tile (None: the Upscaler's default)."""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS
    cache_size: int = DEFAULT_CACHE_SIZE
    max_queue: int = DEFAULT_MAX_QUEUE
    quiet: bool = False
    """Do not log each request to stderr."""


@dataclass
class UpscaleResult:
    """A finished upscale: the PNG on disk plus what the response headers say."""

    path: Path
    model: str
    scale: float
    in_size: tuple[int, int]  # (width, height)
    out_size: tuple[int, int]
    seconds: float
    """Inference plus PNG encoding (not the model load, not the wait)."""
    load_seconds: float
    """Loading the model (0 when it was cached)."""
    wait_seconds: float
    """Waiting for the request before it to finish."""
    filename: str


class App:
    """Everything the HTTP layer needs, without HTTP: the models, the cache, the lock, the limits.

    Args:
        models: the :class:`ModelEntry` list (see :func:`collect_models`).
        config: limits and inference settings.
    """

    def __init__(self, models: list[ModelEntry], config: ServerConfig | None = None) -> None:
        if not models:
            raise SrkitError("no models to serve")
        self.config = config or ServerConfig()
        if self.config.cache_size < 1:
            raise SrkitError(f"cache size must be at least 1, got {self.config.cache_size}")
        self.models = {m.name: m for m in models}
        from ..zoo import DEFAULT_MODEL

        self.default_model = DEFAULT_MODEL if DEFAULT_MODEL in self.models else models[0].name
        self._cache: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._bicubic: Any = None
        self._loaded: tuple[str, ...] = ()  # names in the cache, for /api/health without taking the lock
        self._lock = threading.Lock()  # one inference (and model load) at a time: memory stays bounded
        self._count_lock = threading.Lock()
        self._pending = 0  # requests running or waiting for _lock
        self.started = time.time()
        self.served = 0

    # --------------------------------------------------------------------------------------- facts
    def limits(self) -> dict[str, Any]:
        c = self.config
        return {"max_upload_bytes": c.max_upload_bytes, "max_pixels": c.max_pixels,
                "max_output_pixels": c.max_output_pixels, "max_queue": c.max_queue}

    def health(self) -> dict[str, Any]:
        import torch

        from .. import __version__

        device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return {"status": "ok", "version": __version__, "models": len(self.models),
                "default_model": self.default_model, "loaded": list(self._loaded), "busy": self._pending > 0,
                "pending": self._pending, "served": self.served, "uptime_seconds": round(time.time() - self.started, 1),
                "device": device, "threads": torch.get_num_threads(), "limits": self.limits()}

    def models_json(self) -> dict[str, Any]:
        return {"default": self.default_model, "models": [m.as_json() for m in self.models.values()],
                "limits": self.limits()}

    # --------------------------------------------------------------------------------------- checks
    def entry(self, name: str | None) -> ModelEntry:
        name = self.default_model if name in (None, "") else name
        if name not in self.models:
            raise HttpError(404, f"unknown model {name!r}; this server offers: {', '.join(self.models)}")
        return self.models[name]

    @staticmethod
    def parse_scale(text: str | None, entry: ModelEntry) -> float:
        """The requested scale, checked against the model (400 not a number, 422 not supported)."""
        if text is None or text.strip() == "":
            scale = entry.default_scale
        else:
            try:
                scale = float(text.strip().lstrip("xX"))
            except ValueError:
                raise HttpError(400, f"scale must be a number, not {text!r}") from None
            if not math.isfinite(scale) or scale <= 0:
                raise HttpError(400, f"scale must be a positive number, not {text!r}")
        d = entry.descriptor
        try:
            d.check_scale(scale)
        except SrkitError:
            if d.scale_range is not None:
                lo, hi = d.scale_range
                msg = f"{entry.name} upscales by any scale from x{lo:g} to x{hi:g}, not x{scale:g}"
            else:
                msg = (f"{entry.name} upscales by x{', x'.join(map(str, d.scales))}, not x{scale:g} (`srkit "
                       f"upscale --scale` runs other scales with a bicubic finish)")
            raise HttpError(422, msg) from None
        return scale

    def check_model(self, entry: ModelEntry) -> None:
        if entry.descriptor.needs_ref:
            raise HttpError(422, _NO_REFERENCE.format(name=entry.name))

    # --------------------------------------------------------------------------------------- inference
    def _upscaler(self, entry: ModelEntry) -> Any:
        """The cached Upscaler of ``entry`` (call with ``_lock`` held)."""
        if entry.source == "builtin":  # bicubic: nothing to load, kept outside the cache
            if self._bicubic is None:
                self._bicubic = _bicubic_upscaler(entry)
            return self._bicubic
        up = self._cache.get(entry.name)
        if up is not None:
            self._cache.move_to_end(entry.name)
            self._loaded = tuple(self._cache)
            return up
        while len(self._cache) >= self.config.cache_size:
            self._cache.popitem(last=False)  # drop the least recently used before loading the next
        self._loaded = tuple(self._cache)
        from ..inference import load

        c = self.config
        try:
            up = load(entry.target, device=c.device, max_memory=c.max_memory, tile=c.tile)
        except SrkitError as e:  # e.g. the file was replaced by a broken one since the server started
            raise HttpError(500, f"cannot load model {entry.name}: {e}") from None
        up.name = entry.name
        self._cache[entry.name] = up
        self._loaded = tuple(self._cache)
        return up

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Admission of one upscale request, from reading its body to its result on disk.

        At most ``max_queue + 1`` requests hold a slot (one running, the others waiting for the lock), so
        uploads in memory and decoded images are bounded too; beyond that :class:`HttpError` 503.
        """
        with self._count_lock:
            if self._pending > self.config.max_queue:
                raise HttpError(503, f"busy: {self._pending} requests are already running or waiting; try again "
                                f"shortly", headers={"Retry-After": "5"})
            self._pending += 1
        try:
            yield
        finally:
            with self._count_lock:
                self._pending -= 1

    def upscale_file(self, src: Path, workdir: Path, entry: ModelEntry, scale: float,
                     filename: str | None = None) -> UpscaleResult:
        """Upscale the image file ``src`` with ``entry`` at ``scale``; the PNG is written under ``workdir``.

        ``filename`` is the client's name for the upload (for messages and the result's name); messages never
        show the temporary path. Call it inside :meth:`slot`. Raises :class:`HttpError`.
        """
        import numpy as np

        from ..data.io import load_image
        from ..errors import ImageReadError

        self.check_model(entry)
        label = f"uploaded image {filename!r}" if filename else "the uploaded image"
        try:
            img = load_image(src, max_pixels=self.config.max_pixels)
        except ImageReadError as e:
            msg = str(e).replace(f"image {src}", label).replace(str(src), label)
            if _too_many_pixels(e):
                msg = msg.split(" (a guard")[0] + " (the server's --max-pixels limit)"
                raise HttpError(413, msg) from None
            raise HttpError(400, msg) from None
        a = img.array
        h, w = a.shape[:2]
        fs = entry.descriptor.fixed_size
        if fs is not None and (h, w) != (fs, fs):
            raise HttpError(422, f"{entry.name} takes exactly {fs}x{fs} images, not {w}x{h}; resize or crop {label} "
                            f"first")
        oh, ow = max(round(h * scale), 1), max(round(w * scale), 1)
        if oh * ow > self.config.max_output_pixels:
            raise HttpError(413, f"{label} is {w}x{h}; x{scale:g} would make {ow}x{oh} = {ow * oh:,} pixels, above "
                            f"this server's limit of {self.config.max_output_pixels:,} output pixels "
                            f"(--max-output-pixels); use a smaller scale or image, or `srkit upscale`")
        gray_alpha = img.mode.startswith("LA") and a.shape[-1] == 4
        if gray_alpha:  # as `srkit upscale`: gray + alpha in, so that the result stays exactly gray
            a = np.ascontiguousarray(a[..., [0, 3]])
        out = workdir / "result.png"
        t_wait = time.perf_counter()
        with self._lock:
            t_load = time.perf_counter()
            up = self._upscaler(entry)
            t0 = time.perf_counter()
            self._run(up, a, scale, out, img.icc_profile, gray_alpha)
            t1 = time.perf_counter()
            self.served += 1
        return UpscaleResult(path=out, model=entry.name, scale=scale, in_size=(w, h), out_size=(ow, oh),
                             seconds=t1 - t0, load_seconds=t0 - t_load, wait_seconds=t_load - t_wait,
                             filename=_result_name(filename, scale))

    @staticmethod
    def _run(up: Any, a: Any, scale: float, out: Path, icc: bytes | None, gray_alpha: bool) -> None:
        import numpy as np
        import torch

        from ..data.io import write_image
        from ..inference import TilingOutOfMemoryError, streaming

        try:
            out_hw = up.output_size(a.shape[0], a.shape[1], scale)
            with torch.inference_mode():
                if streaming.should_stream(up, out_hw):  # LIIF results larger than memory: strips to the PNG
                    streaming.upscale_to_png(up, a, out, scale=scale, icc_profile=icc)
                    return
                result = up.upscale(a, scale=scale)
            if gray_alpha:
                result = np.ascontiguousarray(result[..., [0, 0, 0, 1]])
            write_image(out, result, icc_profile=icc)
        except TilingOutOfMemoryError as e:
            raise HttpError(503, str(e)) from None
        except SrkitError as e:  # an input the network cannot take
            raise HttpError(422, str(e)) from None


def _too_many_pixels(e: Exception) -> bool:
    from ..errors import ImageTooLargeError

    return isinstance(e, ImageTooLargeError)


def _base_name(filename: str | None) -> str | None:
    """The last component of a client-side file name (browsers on Windows may send a full path)."""
    if not filename:
        return None
    return Path(filename.replace("\\", "/")).name[:200] or None


def _result_name(filename: str | None, scale: float) -> str:
    stem = Path(filename).stem if filename else "image"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "image"
    return f"{stem[:80]}_x{scale:g}.png"


# ---------------------------------------------------------------------------------------------- multipart


def _header_param(value: str, param: str, header: str = "content-type") -> str | None:
    m = email.message.Message()
    m[header] = value
    got = m.get_param(param, header=header)
    if isinstance(got, tuple):  # RFC 2231 encoded
        got = email.utils.collapse_rfc2231_value(got)
    return got


def parse_multipart(body: bytes, content_type: str, field_name: str = "file") -> tuple[memoryview, str | None]:
    """The bytes and filename of the ``field_name`` part of a ``multipart/form-data`` body.

    Raises :class:`HttpError` (400) when the body is not well-formed or has no such field.
    """
    boundary = _header_param(content_type, "boundary")
    if not boundary:
        raise HttpError(400, "multipart/form-data without a boundary parameter")
    delim = b"--" + boundary.encode("latin-1")
    view = memoryview(body)
    pos = body.find(delim)
    if pos < 0:
        raise HttpError(400, "malformed multipart body: the boundary does not occur in it")
    while True:
        start = pos + len(delim)
        if body[start:start + 2] == b"--":
            break  # closing delimiter
        head_end = body.find(b"\r\n\r\n", start)
        if head_end < 0:
            break
        nxt = body.find(b"\r\n" + delim, head_end + 4)
        if nxt < 0:
            raise HttpError(400, "malformed multipart body: a part has no closing boundary (truncated upload?)")
        # browsers send the part headers (the file name) as raw UTF-8
        headers = body[start:head_end].decode("utf-8", "replace").strip("\r\n").split("\r\n")
        disposition = next((h.split(":", 1)[1].strip() for h in headers
                            if h.lower().startswith("content-disposition:")), "")
        if _header_param(disposition, "name", "content-disposition") == field_name:
            filename = _header_param(disposition, "filename", "content-disposition")
            return view[head_end + 4:nxt], filename
        pos = nxt + 2
    raise HttpError(400, f"the multipart upload has no {field_name!r} field (send the image as file=@IMAGE)")


# ---------------------------------------------------------------------------------------------- HTTP


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the :class:`App` of its server. Every response closes the connection."""

    protocol_version = "HTTP/1.1"  # for "Expect: 100-continue" (curl's uploads); keep-alive is not offered
    timeout = 60  # seconds a client may stall while sending its request
    server: "SrkitServer"

    GET_ROUTES = ("/", "/index.html", "/api/health", "/api/models", "/favicon.ico")
    POST_ROUTES = ("/api/upscale",)

    @property
    def app(self) -> App:
        return self.server.app

    # --------------------------------------------------------------------------------------- plumbing
    def version_string(self) -> str:
        from .. import __version__

        return f"srkit/{__version__}"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if not self.app.config.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Connection", "close")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, (json.dumps(doc, indent=1) + "\n").encode(), "application/json; charset=utf-8", headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error, including those of the base class (bad request line, unknown method), as JSON."""
        try:
            short = HTTPStatus(code).phrase
        except ValueError:
            short = "error"
        text = message or short
        if code == 501 and self.command:
            text = f"method {self.command} is not supported"
        self.log_error("code %d, message %s", code, text)
        self._json(code, {"error": text})

    def _path(self) -> str:
        return urlsplit(self.path).path

    def _method_not_allowed(self, allowed: str) -> None:
        self._json(405, {"error": f"{self.command} is not allowed on {self._path()}; use {allowed}"},
                   {"Allow": allowed})

    def _wrong_route(self) -> None:
        path = self._path()
        if path in self.GET_ROUTES:
            self._method_not_allowed("GET, HEAD")
        elif path in self.POST_ROUTES:
            self._method_not_allowed("POST")
        else:
            self._not_found(path)

    def _not_found(self, path: str) -> None:
        self._json(404, {"error": f"no such path {path!r}; the page is / and the API is /api/health, /api/models "
                         f"and POST /api/upscale"})

    # --------------------------------------------------------------------------------------- methods
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self._path()
        try:
            if path in ("/", "/index.html"):
                from .page import render_page

                self._send(200, render_page().encode(), "text/html; charset=utf-8", {
                    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src "
                    "'unsafe-inline'; img-src blob: data:; connect-src 'self'; base-uri 'none'; form-action 'self'",
                    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"})
            elif path == "/api/health":
                self._json(200, self.app.health())
            elif path == "/api/models":
                self._json(200, self.app.models_json())
            elif path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
            elif path in self.POST_ROUTES:
                self._method_not_allowed("POST")
            else:
                self._not_found(path)
        except Exception as e:  # noqa: BLE001 - answer 500 with one line, keep serving
            self._internal_error(e)

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        path = self._path()
        if path not in self.POST_ROUTES:
            self._wrong_route()
            self._drain()
            return
        workdir = None
        try:
            workdir = Path(tempfile.mkdtemp(prefix="srkit-serve-"))
            result = self._upscale(workdir)
            self._send_png(result)
        except HttpError as e:
            self._json(e.status, {"error": e.message}, e.headers)
            self._drain()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True  # the client went away; nothing to answer
        except Exception as e:  # noqa: BLE001
            self._internal_error(e)
            self._drain()
        finally:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)

    def do_PUT(self) -> None:  # noqa: N802
        self._wrong_route()
        self._drain()

    do_DELETE = do_PATCH = do_PUT

    def do_OPTIONS(self) -> None:  # noqa: N802
        path = self._path()
        if path in self.GET_ROUTES or path in self.POST_ROUTES:
            allowed = "POST" if path in self.POST_ROUTES else "GET, HEAD"
            self._send(204, b"", "text/plain", {"Allow": f"{allowed}, OPTIONS"})
        else:
            self._not_found(path)

    def _internal_error(self, e: BaseException) -> None:
        print(f"srkit serve: internal error on {self.command} {self.path}:", file=sys.stderr)
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
        line = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
        try:
            self._json(500, {"error": f"internal error ({line[:300]})"})
        except OSError:
            pass

    # --------------------------------------------------------------------------------------- uploads
    def _content_length(self) -> int:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise HttpError(411, "chunked uploads are not accepted: send a Content-Length (a file, not a stream)")
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise HttpError(411, "a Content-Length header is required")
        try:
            n = int(raw)
        except ValueError:
            raise HttpError(400, f"bad Content-Length {raw!r}") from None
        if n < 0:
            raise HttpError(400, f"bad Content-Length {raw!r}")
        limit = self.app.config.max_upload_bytes
        if n > limit:
            raise HttpError(413, f"upload of {n:,} bytes is larger than this server's limit of {limit:,} bytes "
                            f"(--max-upload-mb {limit / 2**20:.4g})")
        if n == 0:
            raise HttpError(400, "empty request body: send the image file as the body or as a multipart 'file' field")
        return n

    def handle_expect_100(self) -> bool:
        """Refuse a doomed upload before the client sends it (curl asks first for large bodies)."""
        if self.command == "POST" and self._path() in self.POST_ROUTES:
            try:
                self._content_length()
            except HttpError as e:
                self._json(e.status, {"error": e.message}, e.headers)
                self._no_body = True
                return False
        return super().handle_expect_100()

    def _read_exact(self, n: int, sink: Any = None) -> bytes | None:
        """Read ``n`` body bytes into memory, or into the binary file ``sink`` in chunks."""
        parts: list[bytes] = []
        left = n
        while left > 0:
            chunk = self.rfile.read(min(_CHUNK, left))
            if not chunk:
                raise HttpError(400, f"the upload ended after {n - left:,} of {n:,} bytes")
            if sink is not None:
                sink.write(chunk)
            else:
                parts.append(chunk)
            left -= len(chunk)
        self._body_read = True
        return None if sink is not None else b"".join(parts)

    def _drain(self) -> None:
        """Read and drop an unread request body (bounded), so the client is not reset before it reads the answer."""
        if getattr(self, "_body_read", False) or getattr(self, "_no_body", False):
            return
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        n = min(max(n, 0), _DRAIN_BYTES)
        deadline = time.monotonic() + _DRAIN_SECONDS
        try:
            self.connection.settimeout(1.0)
            while n > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(_CHUNK, n)) if hasattr(self.rfile, "read1") else self.rfile.read(
                    min(_CHUNK, n))
                if not chunk:
                    break
                n -= len(chunk)
        except OSError:
            pass
        self._body_read = True

    def _upscale(self, workdir: Path) -> UpscaleResult:
        app = self.app
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        unknown = sorted(set(query) - {"model", "scale"})
        if unknown:
            raise HttpError(400, f"unknown parameter(s) {', '.join(unknown)}; the parameters are model and scale")
        model = query.get("model", [None])[-1]
        scale_text = query.get("scale", [None])[-1]
        n = self._content_length()
        entry = app.entry(model)  # 404 and 422 before the body is read: no upload for a doomed request
        app.check_model(entry)
        scale = app.parse_scale(scale_text, entry)

        with app.slot():
            src, filename = self._receive(n, workdir)
            return app.upscale_file(src, workdir, entry, scale, filename)

    def _receive(self, n: int, workdir: Path) -> tuple[Path, str | None]:
        """Read the body of ``n`` bytes into a file under ``workdir``: (its path, the client's file name)."""
        ctype = self.headers.get("Content-Type") or "application/octet-stream"
        src = workdir / "upload"
        filename = None
        if ctype.lower().startswith("multipart/form-data"):
            body = self._read_exact(n)
            data, filename = parse_multipart(body, ctype)
            src.write_bytes(data)
            del body, data
            filename = _base_name(filename)
        else:  # any other type is the file itself (curl --data-binary sends x-www-form-urlencoded)
            with open(src, "wb") as f:
                self._read_exact(n, sink=f)
            filename = _base_name(self.headers.get("X-Filename"))
        return src, filename

    def _send_png(self, r: UpscaleResult) -> None:
        size = r.path.stat().st_size
        self.send_response(200)
        headers = {
            "Content-Type": "image/png",
            "Content-Length": str(size),
            "Content-Disposition": f'inline; filename="{r.filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Srkit-Model": quote(r.model, safe=_HEADER_SAFE),
            "X-Srkit-Scale": f"{r.scale:g}",
            "X-Srkit-Seconds": f"{r.seconds:.3f}",
            "X-Srkit-Load-Seconds": f"{r.load_seconds:.3f}",
            "X-Srkit-Wait-Seconds": f"{r.wait_seconds:.3f}",
            "X-Srkit-Input-Size": f"{r.in_size[0]}x{r.in_size[1]}",
            "X-Srkit-Output-Size": f"{r.out_size[0]}x{r.out_size[1]}",
            "X-Srkit-Width": str(r.out_size[0]),
            "X-Srkit-Height": str(r.out_size[1]),
            "Connection": "close",
        }
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.close_connection = True
        with open(r.path, "rb") as f:
            shutil.copyfileobj(f, self.wfile, _CHUNK)


class SrkitServer(ThreadingHTTPServer):
    """A threading HTTP server carrying the :class:`App`; each request runs in a daemon thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        if ":" in address[0]:  # an IPv6 address such as ::1 or ::
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A broken connection is the client's business; anything else is logged, and the server goes on.
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, socket.timeout)):
            return
        print(f"srkit serve: error while handling a request from {client_address[0]}:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)


def make_server(
    models: list[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: ServerConfig | None = None,
    bicubic: bool = True,
) -> SrkitServer:
    """Build (bind, not start) a server offering ``models`` (zoo names or model files; None: the whole zoo)
    and, with ``bicubic``, the built-in MATLAB bicubic baseline.

    Call ``serve_forever()`` on the result (in a thread for tests, with ``port=0`` for a free port), then
    ``shutdown()`` and ``server_close()``. Raises :class:`SrkitError` for unreadable models or an address that
    cannot be bound.
    """
    app = App(collect_models(models, bicubic=bicubic), config)
    try:
        return SrkitServer((host.strip("[]"), port), app)
    except OSError as e:
        raise SrkitError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


__all__ = ["BICUBIC", "App", "HttpError", "ModelEntry", "ServerConfig", "SrkitServer", "UpscaleResult",
           "bicubic_entry", "collect_models", "describe_model", "make_server", "parse_multipart"]
