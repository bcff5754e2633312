"""srkit's web app and HTTP API (``srkit serve``): a thin layer over :func:`srkit.load` and the Upscaler.

    >>> from srkit.web import make_server
    >>> server = make_server(["srkit-default"], port=0)     # bind a free port; nothing runs yet
    >>> print(server.url)                                    # then server.serve_forever() (in a thread)

Standard library only; torch is imported when the first model is loaded. See ``docs/web.md``.
"""

from __future__ import annotations

from .server import App, HttpError, ModelEntry, ServerConfig, SrkitServer, collect_models, make_server

__all__ = ["App", "HttpError", "ModelEntry", "ServerConfig", "SrkitServer", "collect_models", "make_server"]
