"""``srkit serve``: the web page and HTTP API of :mod:`srkit.web` on a local port.

It listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise: there is no authentication and
no TLS, so exposing it to a network (``--host 0.0.0.0``) is the user's decision. Ctrl-C (or SIGTERM) stops it.
"""

from __future__ import annotations

import argparse


def _positive_int(text: str) -> int:
    try:
        v = int(float(text.replace("_", "")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text!r}")
    return v


def _megabytes(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of MiB: {text!r}") from None
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of MiB, not {text!r}")
    return v


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535 (0 = any free port), not {v}")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    from .upscale import _tile, parse_memory

    p = sub.add_parser(
        "serve",
        help="web page and HTTP API for upscaling (local)",
        description="Serve a web page (upload an image, pick a model and scale, compare and download) and a "
        "JSON/PNG API (GET /api/models, POST /api/upscale?model=NAME&scale=S). It listens on 127.0.0.1, i.e. "
        "this machine only; it has no authentication and no TLS, so exposing it with --host 0.0.0.0 is your "
        "choice. One image is upscaled at a time. Ctrl-C stops it. See docs/web.md.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it to the "
                   "network, at your own risk)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--model", action="extend", nargs="+", default=None, metavar="NAME_OR_FILE",
                   help="zoo names or srkit model files to offer (default: every zoo model)")
    p.add_argument("--no-bicubic", action="store_true",
                   help="do not offer the built-in 'bicubic' model (MATLAB bicubic, the baseline the page compares "
                   "with)")
    p.add_argument("--max-upload-mb", type=_megabytes, default=50.0, metavar="N",
                   help="largest upload in MiB (default 50); larger requests get 413 before their body is read")
    p.add_argument("--max-pixels", type=_positive_int, default=25_000_000, metavar="N",
                   help="largest input image in pixels (default 25000000); larger files are refused (413) "
                   "before they are decoded")
    p.add_argument("--max-output-pixels", type=_positive_int, default=50_000_000, metavar="N",
                   help="largest result in pixels (default 50000000, a 2040x1356 image at x4 fits); larger "
                   "requests get 413 before any work")
    p.add_argument("--tile", type=_tile, default=None, metavar="N",
                   help="tile side in input pixels (default: from --max-memory; 0 = no tiling)")
    p.add_argument("--max-memory", type=parse_memory, default=None, metavar="SIZE",
                   help="memory budget for one tile, e.g. 2GB (default: 80%% of free GPU memory, or half the "
                   "available RAM on CPU)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="CPU threads for torch (default: torch's own choice)")
    p.add_argument("--cache", type=_positive_int, default=2, metavar="N",
                   help="models kept loaded at once (default 2; the least recently used is dropped)")
    p.add_argument("--max-queue", type=int, default=4, metavar="N",
                   help="upscale requests that may wait while one runs (default 4); more get 503")
    p.add_argument("--quiet", action="store_true", help="do not log each request")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..errors import SrkitError

    if args.max_queue < 0:
        raise SrkitError(f"--max-queue must be >= 0, got {args.max_queue}")
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device is not None:  # fail now, not at the first request
        from ..inference.upscaler import _parse_device

        _parse_device(args.device)
    from ..web import ServerConfig, make_server

    config = ServerConfig(
        device=args.device, tile=args.tile, max_memory=args.max_memory,
        max_upload_bytes=int(args.max_upload_mb * 1024**2), max_pixels=args.max_pixels,
        max_output_pixels=args.max_output_pixels, cache_size=args.cache, max_queue=args.max_queue,
        quiet=args.quiet,
    )
    server = make_server(args.model, host=args.host, port=args.port, config=config, bicubic=not args.no_bicubic)
    app = server.app
    print(f"srkit: serving {len(app.models)} model(s) ({', '.join(app.models)}) with {torch.get_num_threads()} "
          f"CPU thread(s)", file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"srkit: warning: listening on {args.host}: other machines can reach this server, which has no "
              f"authentication", file=sys.stderr)
    print(f"srkit: serving on {server.url} (Ctrl-C stops)", flush=True)
    import signal
    import threading

    def _stop(signum, frame):  # SIGTERM (kill, service managers) stops as Ctrl-C does
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        # Python leaves SIGINT ignored when the parent ignored it (a background job of a script, some test
        # runners); the server still promises that Ctrl-C / SIGINT stops it
        signal.signal(signal.SIGINT, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("srkit: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
