"""``srkit serve`` / :mod:`srkit.web`: a real server on a free port, called with urllib and http.client."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from srkit.descriptor import ModelDescriptor
from srkit.web import App, ModelEntry, ServerConfig, SrkitServer, make_server

DEFAULT = "srkit-default"


@contextlib.contextmanager
def running(models: list[str] | None = None, *, server: SrkitServer | None = None, bicubic: bool = True,
            **config) -> Iterator[str]:
    """A server on a free port in a background thread; yields its URL, shuts it down afterwards."""
    config.setdefault("device", "cpu")
    config.setdefault("quiet", True)
    srv = server or make_server(models, host="127.0.0.1", port=0, config=ServerConfig(**config), bicubic=bicubic)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv.url
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)
    assert not thread.is_alive()


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _rgb(h: int = 20, w: int = 24, seed: int = 0, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def _post(url: str, body: bytes, content_type: str = "image/png", headers: dict | None = None):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": content_type, **(headers or {})})
    return urllib.request.urlopen(req, timeout=60)


def _error(url: str, body: bytes | None = None, method: str | None = None, **headers) -> tuple[int, str, dict]:
    """Status, JSON error message and headers of a request that must fail."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=60)
    e = info.value
    assert e.headers["Content-Type"].startswith("application/json")
    doc = json.loads(e.read())
    assert set(doc) == {"error"} and isinstance(doc["error"], str) and doc["error"]
    assert "\n" not in doc["error"] and "Traceback" not in doc["error"]
    return e.code, doc["error"], dict(e.headers)


def _multipart(data: bytes, filename: str = "photo.png", field: str = "file") -> tuple[bytes, str]:
    boundary = "----srkit-test-7d1f"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _decode(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


@pytest.fixture(scope="module")
def reference():
    """The Upscaler the server should agree with (the shipped default model, on the CPU)."""
    import srkit

    return srkit.load(DEFAULT, device="cpu")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from srkit import archs
    from srkit.model_file import save_model

    torch.manual_seed(0)
    kwargs = {"d": 8, "s": 4, "m": 1, "scale": 2}
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, archs.build("fsrcnn", **kwargs), "fsrcnn", kwargs)
    return path


# ---------------------------------------------------------------------------------------------- listing


def test_models_lists_the_zoo_and_health() -> None:
    from srkit import zoo

    with running() as url:
        doc = json.load(urllib.request.urlopen(url + "api/models"))
        health = json.load(urllib.request.urlopen(url + "api/health"))
    names = [m["name"] for m in doc["models"]]
    assert names == [*zoo.list_models(), "bicubic"] and DEFAULT in names
    assert doc["default"] == DEFAULT
    by = {m["name"]: m for m in doc["models"]}
    d = by[DEFAULT]
    assert (d["arch"], d["scales"], d["scale_range"], d["default_scale"]) == ("edsr", [4], None, 4.0)
    assert d["needs_ref"] is False and d["fixed_size"] is None and d["usable"] is True
    assert d["params"] > 100_000 and "edsr" in d["description"] and "Set5" in d["description"]
    liif = by["liif-edsr-baseline"]
    assert liif["scales"] == [] and liif["scale_range"][0] == 1.0 and liif["scale_range"][1] >= 30
    bic = by["bicubic"]
    assert (bic["source"], bic["scale_range"], bic["params"]) == ("builtin", [1.0, 64.0], 0)
    assert health["status"] == "ok" and health["models"] == len(names) and health["busy"] is False
    assert doc["limits"]["max_upload_bytes"] == ServerConfig().max_upload_bytes


def test_model_files_given_explicitly(tiny_model) -> None:
    with running([str(tiny_model), DEFAULT]) as url:
        doc = json.load(urllib.request.urlopen(url + "api/models"))
        assert [(m["name"], m["source"]) for m in doc["models"]] == [("tiny", "file"), (DEFAULT, "zoo"),
                                                                      ("bicubic", "builtin")]
        assert doc["default"] == DEFAULT
        r = _post(url + "api/upscale?model=tiny", _png(_rgb(9, 7)))  # no scale: the model's own (x2)
        assert r.headers["X-Srkit-Scale"] == "2" and _decode(r.read()).shape == (18, 14, 3)
        # a zoo model that was not named is not offered
        code, msg, _ = _error(url + "api/upscale?model=fsrcnn-o-x4", _png(_rgb()), **{"Content-Type": "image/png"})
        assert code == 404 and "tiny" in msg


def test_bad_model_argument_stops_startup(tmp_path) -> None:
    from srkit.errors import SrkitError

    with pytest.raises(SrkitError, match="unknown model 'no-such-model'"):
        make_server(["no-such-model"], port=0)
    (tmp_path / "x.safetensors").write_bytes(b"not a model")
    with pytest.raises(SrkitError, match="not a safetensors model file"):
        make_server([str(tmp_path / "x.safetensors")], port=0)


# ---------------------------------------------------------------------------------------------- upscaling


def test_upscale_equals_the_upscaler(reference) -> None:
    a = _rgb(20, 24)
    with running([DEFAULT]) as url:
        r = _post(url + f"api/upscale?model={DEFAULT}&scale=4", _png(a))
        assert r.status == 200 and r.headers["Content-Type"] == "image/png"
        assert r.headers["X-Srkit-Model"] == DEFAULT and r.headers["X-Srkit-Scale"] == "4"
        assert r.headers["X-Srkit-Input-Size"] == "24x20" and r.headers["X-Srkit-Output-Size"] == "96x80"
        assert (r.headers["X-Srkit-Width"], r.headers["X-Srkit-Height"]) == ("96", "80")
        assert float(r.headers["X-Srkit-Seconds"]) > 0
        out = _decode(r.read())
    assert out.shape == (80, 96, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, reference.upscale(a, scale=4))


def test_multipart_equals_raw_upload(reference) -> None:
    a = _rgb(16, 12, seed=3)
    with running([DEFAULT]) as url:
        raw = _post(url + "api/upscale?scale=4", _png(a), "application/octet-stream").read()
        body, ctype = _multipart(_png(a), filename="C:\\Users\\me\\holiday photo.png")
        r = _post(url + "api/upscale?scale=4", body, ctype)
        assert r.headers["Content-Disposition"] == 'inline; filename="holiday_photo_x4.png"'
        multi = r.read()
        # what `curl --data-binary @FILE` sends: a form content type, but the body is the file itself
        curl = _post(url + "api/upscale", _png(a), "application/x-www-form-urlencoded").read()
    np.testing.assert_array_equal(_decode(multi), _decode(raw))
    np.testing.assert_array_equal(_decode(curl), _decode(raw))
    np.testing.assert_array_equal(_decode(raw), reference.upscale(a, scale=4))


def test_any_scale_model_and_alpha() -> None:
    """LIIF at x3.7 equals its Upscaler; an RGBA upload comes back RGBA, as the Upscaler gives it."""
    import srkit

    a = _rgb(14, 18, seed=5)
    rgba = _rgb(10, 8, seed=6, channels=4)
    with running(["liif-edsr-baseline", DEFAULT], tile=0) as url:
        r = _post(url + "api/upscale?model=liif-edsr-baseline&scale=3.7", _png(a))
        assert r.headers["X-Srkit-Output-Size"] == f"{round(18 * 3.7)}x{round(14 * 3.7)}"
        liif_out = _decode(r.read())
        rgba_out = _decode(_post(url + f"api/upscale?model={DEFAULT}", _png(rgba)).read())
    liif = srkit.load("liif-edsr-baseline", device="cpu", tile=0)
    np.testing.assert_array_equal(liif_out, liif.upscale(a, scale=3.7))
    assert rgba_out.shape == (40, 32, 4)
    np.testing.assert_array_equal(rgba_out, srkit.load(DEFAULT, device="cpu", tile=0).upscale(rgba, scale=4))


def test_bicubic_baseline_is_matlab_imresize() -> None:
    """The built-in ``bicubic`` model is srkit.imresize of the float image, at fractional scales too."""
    from srkit.data.io import to_tensor
    from srkit.data.resize import imresize

    a = _rgb(13, 11, seed=8)
    with running([DEFAULT], bicubic=True) as url:
        r = _post(url + "api/upscale?model=bicubic&scale=2.5", _png(a))
        assert r.headers["X-Srkit-Output-Size"] == "28x32" and r.headers["X-Srkit-Model"] == "bicubic"
        out = _decode(r.read())
        assert json.load(urllib.request.urlopen(url + "api/health"))["loaded"] == []  # not in the LRU cache
    expected = imresize(to_tensor(a), size=(32, 28)).clamp(0, 1)[0].permute(1, 2, 0).mul(255).round().byte().numpy()
    np.testing.assert_array_equal(out, expected)
    with running([DEFAULT], bicubic=False) as url:
        names = [m["name"] for m in json.load(urllib.request.urlopen(url + "api/models"))["models"]]
    assert names == [DEFAULT]


@pytest.mark.parametrize("kind", ["gray", "gray+alpha", "rgb16", "palette"])
def test_image_kinds_equal_srkit_upscale(tmp_path, tiny_model, kind) -> None:
    """Whatever the file holds (gray, gray + alpha, 16 bit, palette), the server answers the PNG that
    ``srkit upscale`` writes for it with the same model."""
    from srkit.cli import main
    from srkit.data.io import load_image

    rng = np.random.default_rng(11)
    src = tmp_path / "in.png"
    if kind == "gray":
        Image.fromarray(rng.integers(0, 256, (9, 7), dtype=np.uint8), "L").save(src)
    elif kind == "gray+alpha":
        Image.fromarray(rng.integers(0, 256, (9, 7, 2), dtype=np.uint8), "LA").save(src)
    elif kind == "rgb16":
        from srkit.data.io import write_image

        write_image(src, rng.integers(0, 65536, (9, 7, 3), dtype=np.uint16))
    else:
        Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).quantize(16).save(src)
    assert main(["upscale", str(src), "-o", str(tmp_path / "cli.png"), "--model", str(tiny_model),
                 "--device", "cpu"]) == 0
    with running([str(tiny_model)]) as url:
        (tmp_path / "web.png").write_bytes(_post(url + "api/upscale?model=tiny", src.read_bytes()).read())
    cli, web = load_image(tmp_path / "cli.png"), load_image(tmp_path / "web.png")
    assert (web.mode, web.bit_depth, web.array.shape) == (cli.mode, cli.bit_depth, cli.array.shape)
    assert web.array.shape[:2] == (18, 14)
    np.testing.assert_array_equal(web.array, cli.array)


# ---------------------------------------------------------------------------------------------- errors


def test_error_cases_answer_json_and_the_server_survives(reference) -> None:
    png = _png(_rgb())
    ok = {"Content-Type": "image/png"}
    with running([DEFAULT, "liif-edsr-baseline"], max_upload_bytes=4000, max_pixels=10_000,
                 max_output_pixels=200_000) as url:
        up = url + "api/upscale"
        code, msg, _ = _error(up, b"\x00garbage, not an image" * 5, **ok)
        assert code == 400 and msg == "cannot read the uploaded image: not a recognised image file"
        body, ctype = _multipart(png[: len(png) // 2], filename="coupé.png")  # a truncated PNG, a UTF-8 name
        code, msg, _ = _error(up, body, **{"Content-Type": ctype})
        assert code == 400 and "'coupé.png'" in msg and "truncated or corrupt" in msg and "/tmp" not in msg
        body, ctype = _multipart(png, field="image")
        assert _error(up, body, **{"Content-Type": ctype})[:2] == (
            400, "the multipart upload has no 'file' field (send the image as file=@IMAGE)")
        code, msg, _ = _error(up + "?model=nope", png, **ok)
        assert code == 404 and "unknown model 'nope'" in msg and DEFAULT in msg
        code, msg, _ = _error(up + f"?model={DEFAULT}&scale=2", png, **ok)
        assert code == 422 and msg.startswith(f"{DEFAULT} upscales by x4, not x2")
        code, msg, _ = _error(up + "?model=liif-edsr-baseline&scale=100", png, **ok)
        assert code == 422 and "from x1 to x64" in msg
        for bad in ("abc", "-2", "nan", "inf"):
            code, msg, _ = _error(up + f"?scale={bad}", png, **ok)
            assert code == 400 and "scale must be" in msg
        assert _error(up + "?size=10x10", png, **ok)[0] == 400
        code, msg, _ = _error(up, png + b"\x00" * 4000, **ok)
        assert code == 413 and "limit of 4,000 bytes" in msg
        code, msg, _ = _error(up, _png(np.zeros((101, 100, 3), np.uint8)), **ok)  # 10,100 pixels > 10,000
        assert code == 413 and "101 = 10,100 pixels exceeds the limit of 10,000" in msg
        code, msg, _ = _error(up + "?model=liif-edsr-baseline&scale=30", png, **ok)  # 720x600 > 200,000
        assert code == 413 and "720x600 = 432,000 pixels" in msg and "--max-output-pixels" in msg
        code, msg, headers = _error(up)
        assert code == 405 and headers["Allow"] == "POST"
        code, msg, headers = _error(url + "api/models", b"x", **ok)
        assert code == 405 and headers["Allow"] == "GET, HEAD"
        assert _error(up, png, method="PUT", **ok)[0] == 405
        assert _error(url, method="DELETE")[0] == 405
        code, msg, _ = _error(url + "no/such/path")
        assert code == 404 and "'/no/such/path'" in msg
        assert _error(url + "no/such/path", png, **ok)[0] == 404
        # after all that, it still works
        out = _decode(_post(up, png).read())
    np.testing.assert_array_equal(out, reference.upscale(_rgb(), scale=4))


def _raw_request(url: str, lines: list[str], body: bytes = b"") -> tuple[int, dict, float]:
    """Send a hand-made request; (status, JSON body, seconds until the answer)."""
    host, port = url.split("//")[1].strip("/").split(":")
    t0 = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        doc = json.loads(resp.read())
    return resp.status, doc, time.perf_counter() - t0


def test_upload_size_checked_before_the_body_is_read() -> None:
    with running([DEFAULT], max_upload_bytes=1000) as url:
        # a client that announces 5 GB and sends nothing: the answer must not wait for the body
        status, doc, seconds = _raw_request(url, ["POST /api/upscale HTTP/1.1", "Host: x", "Content-Length: 5000000000",
                                                  "Content-Type: image/png", "Expect: 100-continue"])
        assert status == 413 and "5,000,000,000 bytes is larger than this server's limit of 1,000" in doc["error"]
        assert seconds < 5
        # the same without "Expect": the answer still comes before (and without) the body
        status, doc, seconds = _raw_request(url, ["POST /api/upscale HTTP/1.1", "Host: x", "Content-Length: 5000000000",
                                                  "Content-Type: image/png"], b"\x89PNG")
        assert status == 413 and seconds < 5
        status, doc, _ = _raw_request(url, ["POST /api/upscale HTTP/1.1", "Host: x", "Content-Type: image/png"])
        assert status == 411 and "Content-Length" in doc["error"]
        status, doc, _ = _raw_request(url, ["POST /api/upscale HTTP/1.1", "Host: x", "Transfer-Encoding: chunked"],
                                      b"5\r\nhello\r\n0\r\n\r\n")
        assert status == 411 and "chunked" in doc["error"]
        status, doc, _ = _raw_request(url, ["POST /api/upscale HTTP/1.1", "Host: x", "Content-Length: 0"])
        assert status == 400 and "empty request body" in doc["error"]
        status, doc, _ = _raw_request(url, ["BREW /api/upscale HTTP/1.1", "Host: x"])
        assert status == 501 and doc == {"error": "method BREW is not supported"}
        assert json.load(urllib.request.urlopen(url + "api/health"))["status"] == "ok"


def test_models_the_web_app_cannot_run_as_asked(tmp_path) -> None:
    """Reference-based: 422 saying so; fixed-size: 422 naming the size; a broken file: 500 naming it."""
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")

    def entry(name, target, **desc):
        return ModelEntry(name=name, target=target, source="file", arch="x", params=None, metrics=None,
                          descriptor=ModelDescriptor(arch="x", scales=(4,), **desc), description="x")

    app = App([entry("refnet", "unused", needs_ref=True), entry("fixed", "unused", fixed_size=32),
               entry("broken", str(broken))], ServerConfig(quiet=True))
    with running(server=SrkitServer(("127.0.0.1", 0), app)) as url:
        listed = {m["name"]: m for m in json.load(urllib.request.urlopen(url + "api/models"))["models"]}
        assert listed["refnet"]["needs_ref"] is True and listed["refnet"]["usable"] is False
        assert "reference" in listed["refnet"]["note"] and listed["fixed"]["fixed_size"] == 32
        ok = {"Content-Type": "image/png"}
        code, msg, _ = _error(url + "api/upscale?model=refnet", _png(_rgb()), **ok)
        assert code == 422 and "reference-based" in msg and "does not take a reference image yet" in msg
        assert "--ref" in msg
        code, msg, _ = _error(url + "api/upscale?model=fixed", _png(_rgb(20, 24)), **ok)
        assert code == 422
        assert msg == "fixed takes exactly 32x32 images, not 24x20; resize or crop the uploaded image first"
        code, msg, _ = _error(url + "api/upscale?model=broken", _png(_rgb()), **ok)
        assert code == 500 and msg.startswith("cannot load model broken: ") and str(broken) in msg


def test_internal_error_is_500_with_one_line(monkeypatch, capsys) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure\nsecond line")

    with running([DEFAULT]) as url:
        monkeypatch.setattr(App, "_run", staticmethod(boom))
        code, msg, _ = _error(url + "api/upscale", _png(_rgb()), **{"Content-Type": "image/png"})
        assert code == 500 and msg == "internal error (RuntimeError: simulated failure)"
        monkeypatch.undo()
        assert _post(url + "api/upscale", _png(_rgb())).status == 200
    assert "Traceback" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- resources


def test_one_inference_at_a_time_and_a_bounded_queue(reference) -> None:
    config = ServerConfig(device="cpu", quiet=True, max_queue=0)
    server = make_server([DEFAULT], port=0, config=config)
    app = server.app
    a = _rgb(8, 8, seed=9)
    results: list = []
    with running(server=server) as url:
        app._lock.acquire()  # as if an image were being upscaled
        try:
            t = threading.Thread(target=lambda: results.append(_post(url + "api/upscale", _png(a)).read()))
            t.start()
            deadline = time.monotonic() + 10
            while app._pending < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert app._pending == 1 and not results  # waiting for the lock, not running
            code, msg, headers = _error(url + "api/upscale", _png(a), **{"Content-Type": "image/png"})
            assert code == 503 and msg.startswith("busy") and headers["Retry-After"] == "5"
        finally:
            app._lock.release()
        t.join(30)
        health = json.load(urllib.request.urlopen(url + "api/health"))
    assert len(results) == 1 and health["pending"] == 0 and health["served"] == 1
    np.testing.assert_array_equal(_decode(results[0]), reference.upscale(a, scale=4))


def test_model_cache_is_lru(tiny_model) -> None:
    with running([DEFAULT, str(tiny_model)], cache_size=1) as url:
        health = lambda: json.load(urllib.request.urlopen(url + "api/health"))  # noqa: E731
        assert health()["loaded"] == []
        _post(url + "api/upscale?model=tiny", _png(_rgb(6, 6))).read()
        assert health()["loaded"] == ["tiny"]
        _post(url + f"api/upscale?model={DEFAULT}", _png(_rgb(6, 6))).read()
        assert health()["loaded"] == [DEFAULT]


# ---------------------------------------------------------------------------------------------- page, CLI


def test_page_is_self_contained_html() -> None:
    with running([DEFAULT]) as url:
        r = urllib.request.urlopen(url)
        html = r.read().decode()
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        head = urllib.request.urlopen(urllib.request.Request(url, method="HEAD"))
        assert head.read() == b"" and int(head.headers["Content-Length"]) == len(html.encode())
    assert html.startswith("<!doctype html>") and '<form id="form">' in html
    assert 'type="file"' in html and 'id="model"' in html and 'id="scale"' in html and 'type="range"' in html
    assert "/api/upscale" in html and "/api/models" in html and "download" in html
    assert "http://" not in html and "https://" not in html and "//cdn" not in html  # nothing from the internet


def test_cli_serve_prints_the_url_and_stops_on_ctrl_c(tiny_model) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # the child starts with SIGINT ignored, as a background job of a script does (and as it may inherit from
    # the test runner): serve must still stop on it
    proc = subprocess.Popen(preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN), args=
        [sys.executable, "-m", "srkit", "serve", "--port", "0", "--model", str(tiny_model), "--threads", "1",
         "--quiet", "--device", "cpu", "--no-bicubic"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("srkit: serving on http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[3]
        assert json.load(urllib.request.urlopen(url + "api/health", timeout=20))["models"] == 1
        r = _post(url + "api/upscale", _png(_rgb(5, 4)))
        assert _decode(r.read()).shape == (10, 8, 3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert "stopped" in proc.stderr.read()
        with pytest.raises(OSError):  # the port is closed
            urllib.request.urlopen(url + "api/health", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
