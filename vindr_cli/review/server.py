"""The review server: standard library ``ThreadingHTTPServer`` on 127.0.0.1 only.

Every request needs the token (``?t=`` for the page, which sets a SameSite=Strict, HttpOnly
cookie; the ``X-Vindr-Token`` header or that cookie for everything else) and a Host header of
``127.0.0.1:PORT`` or ``localhost:PORT`` (DNS rebinding); else 403. No request path maps to
the file system: images are named by image_id and looked up in the queues' table, rendered by
vindr's display pipeline (``vindr_cli.pixels``) as PNG and cached under
``DIR/.vindr/review/cache/`` (atomic writes). The page itself is package data (static/).
Nothing is logged: a request line carries the token.

Endpoints: ``GET /`` (page), ``GET /static/{index.html,review.js,review.css}``,
``GET /api/state``, ``GET /api/image/<image_id>.png?size=thumb|large&window=header|wider|narrower&frame=N``,
``POST /api/decide`` ``{"image_id", "queue", "decision", "box"?}``, ``POST /api/undo`` ``{"image_id"?}``.
"""
from __future__ import annotations

import io
import json
import re
import secrets
import threading
import webbrowser
from dataclasses import dataclass, field
from http import cookies
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np

from vindr_cli.atomic import atomic_write
from vindr_cli.errors import RequestError
from vindr_cli.review import decisions
from vindr_cli.review.queues import Queues, build_queues

HOST = "127.0.0.1"
COOKIE = "vindr_review"
HEADER = "X-Vindr-Token"
SIZES = {"thumb": 256, "large": 1024}
WINDOWS = ("header", "wider", "narrower")
STATIC = {"index.html": "text/html; charset=utf-8", "review.js": "text/javascript; charset=utf-8",
          "review.css": "text/css; charset=utf-8"}
ID = re.compile(r"[0-9a-f]{32}")
CACHE = Path(decisions.STATE) / "review" / "cache"
RENDER_VERSION = "1"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _static(name: str) -> bytes:
    return (resources.files("vindr_cli.review") / "static" / name).read_bytes()


# ---------------------------------------------------------------- rendering (display pipeline)

def render_png(path: Path, *, size: str = "thumb", window: str = "header", frame: int = 0) -> bytes:
    """One frame of a de-identified file as PNG, through vindr's display pipeline: decode,
    the header window (``wider``/``narrower``: its width doubled/halved), area resize to
    fit ``SIZES[size]``."""
    import pydicom
    from PIL import Image as PILImage

    from vindr_cli.dicomio.quiet import quiet_pydicom
    from vindr_cli.pixels.backends import quiet_stderr
    from vindr_cli.pixels.colour import is_colour, render_colour
    from vindr_cli.pixels.decode import check_grayscale, decode
    from vindr_cli.pixels.resize import resize, to_uint
    from vindr_cli.pixels.voi import display_params
    from vindr_cli.pixels.window import render

    quiet_pydicom()
    ds = pydicom.dcmread(path)
    rows, cols = int(ds.Rows), int(ds.Columns)
    side = SIZES[size]
    scale = min(1.0, side / max(rows, cols))
    out_rows, out_cols = max(1, round(rows * scale)), max(1, round(cols * scale))
    colour = is_colour(ds)
    if not colour:
        check_grayscale(ds)
    with quiet_stderr():
        dec = decode(ds, target=(out_rows, out_cols))
    f = dec.frames[min(max(frame, 0), len(dec.frames) - 1)]
    if colour:
        shown, _ = render_colour(f, ds, out_bits=16)
    else:
        p = display_params(ds)
        shown, _ = render(f, p, preset_mode(f, p, window), out_bits=16, ds=ds)    # one render per request
    scaled = resize(shown.astype(np.float32) / 65535.0 * 255, out_rows, out_cols, "area")
    image = to_uint(scaled, 8)
    buf = io.BytesIO()
    PILImage.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def preset_mode(f, p, window: str):
    """The window mode of a preset, chosen without rendering: ``header`` as it is; ``wider`` /
    ``narrower`` the header window's width doubled / halved (the header's own window, else the
    percentile window the header mode falls back to); a VOI LUT: the full range (min..max) or
    the middle of it (10th..90th percentile). (Before: the header window was rendered first
    only to learn its width, so every wider/narrower image was rendered twice.)"""
    from vindr_cli.pixels.voi import modality_lut, padding_mask, stored_values
    from vindr_cli.pixels.window import WindowMode, choose_window

    if window == "header":
        return WindowMode("header")
    if p.voi_lut_data is not None:
        return WindowMode("minmax") if window == "wider" else WindowMode("percentile", lo=10, hi=90)
    stored = stored_values(f, p)
    used = choose_window(WindowMode("header"), p, modality_lut(stored, p), ~padding_mask(stored, p))
    if used.center is None or not used.width:
        return WindowMode("minmax") if window == "wider" else WindowMode("percentile", lo=10, hi=90)
    w = used.width * 2 if window == "wider" else max(1.0, used.width / 2)
    return WindowMode("explicit", center=used.center, width=w)


# ---------------------------------------------------------------- the app (no HTTP here)

@dataclass
class ReviewApp:
    queues: Queues
    reviewer: str | None = None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def review_dir(self) -> Path:
        return self.queues.review_dir

    def state(self) -> dict:
        q = self.queues
        by_queue = decisions.current_by_queue(self.review_dir, q.applied())
        progress = {name: {"total": len(ids), "decided": sum(1 for i in ids if decisions.is_decided(i, name, by_queue))}
                    for name, ids in q.queues.items()}
        return {
            "reviewer": self.reviewer,
            "queues": q.queues,
            "progress": progress,
            "images": {i: img.public() for i, img in q.images.items() if any(i in ids for ids in q.queues.values())},
            "decisions": {i: {queue: {"decision": r["decision"], "box": json.loads(r["box"]) if r["box"] else None,
                                      "seq": r["seq"]} for queue, r in per.items()}
                          for i, per in by_queue.items()},
            "verdicts": {i: decisions.verdict(per) for i, per in by_queue.items()},
        }

    def known(self, image_id: str) -> bool:
        return bool(ID.fullmatch(image_id)) and image_id in self.queues.images

    def image(self, image_id: str, size: str, window: str, frame: int) -> bytes:
        img = self.queues.images[image_id]
        frame = min(max(frame, 0), img.frames - 1)
        # named by the pixel data's hash too: a tree anonymized again never shows a stale rendering
        pix = img.pixel_sha256[:16] if re.fullmatch(r"[0-9a-f]{16,64}", img.pixel_sha256) else "x"
        cache = self.review_dir / CACHE / f"{image_id}_{pix}_{size}_{window}_{frame}_v{RENDER_VERSION}.png"
        if cache.is_file():
            return cache.read_bytes()
        png = render_png(self._inside_tree(img.output), size=size, window=window, frame=frame)
        with atomic_write(cache) as f:
            f.write(png)
        return png

    def _inside_tree(self, rel: str) -> Path:
        """TREE/rel, a regular file whose real path is inside the tree (a link planted in the
        tree is never followed out of it); else OSError (the page shows a fixed line)."""
        tree = Path(self.queues.tree).resolve()
        path = (tree / rel).resolve()
        if tree not in path.parents or not path.is_file():
            raise FileNotFoundError("outside the tree")
        return path

    def decide(self, body: dict) -> dict:
        image_id, queue = str(body.get("image_id", "")), str(body.get("queue", ""))
        if not self.known(image_id) or image_id not in self.queues.queues.get(queue, []):
            raise decisions.DecisionError("unknown image or queue")
        img = self.queues.images[image_id]
        return decisions.record(self.review_dir, image_id, queue, str(body.get("decision", "")),
                                box=body.get("box"), reviewer=self.reviewer, shape=(img.rows, img.cols, img.frames))

    def undo(self, body: dict) -> dict | None:
        image_id = body.get("image_id")
        if image_id is not None and not self.known(str(image_id)):
            raise decisions.DecisionError("unknown image")
        return decisions.undo(self.review_dir, image_id=image_id, reviewer=self.reviewer,
                              applied=self.queues.applied())


# ---------------------------------------------------------------- HTTP

class _Handler(BaseHTTPRequestHandler):
    app: ReviewApp            # set on the subclass made per server
    port: int
    server_version = "vindr-review"
    sys_version = ""

    def log_message(self, format, *args):     # noqa: A002 - never log: the request line holds the token
        pass

    # -- guards
    def _host_ok(self) -> bool:
        host = self.headers.get("Host", "")
        return host in (f"127.0.0.1:{self.port}", f"localhost:{self.port}")

    def _token_ok(self, query: dict) -> bool:
        given = []
        if query.get("t"):
            given.append(query["t"][0])
        if self.headers.get(HEADER):
            given.append(self.headers[HEADER])
        jar = cookies.SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie", ""))
        except cookies.CookieError:
            pass
        if COOKIE in jar:
            given.append(jar[COOKIE].value)
        return any(secrets.compare_digest(g.encode(), self.app.token.encode()) for g in given)

    def _origin_ok(self) -> bool:
        origin = self.headers.get("Origin")
        return origin is None or origin in (f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}")

    # -- answers
    def _send(self, code: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj) -> None:
        self._send(code, json.dumps(obj).encode(), "application/json")

    def _text(self, code: int, msg: str) -> None:
        self._send(code, (msg + "\n").encode(), "text/plain; charset=utf-8")

    def _guard(self) -> tuple[str, dict] | None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._host_ok():
            self._text(403, "forbidden: Host must be 127.0.0.1 or localhost with this port")
            return None
        if not self._token_ok(query):
            self._text(403, "forbidden: open the URL vindr review printed (it holds the token)")
            return None
        return url.path, query

    def do_GET(self):   # noqa: N802
        g = self._guard()
        if g is None:
            return
        path, query = g
        try:
            if path in ("/", "/index.html"):
                cookie = f"{COOKIE}={self.app.token}; Path=/; HttpOnly; SameSite=Strict"
                self._send(200, _static("index.html"), STATIC["index.html"], {"Set-Cookie": cookie})
            elif path.startswith("/static/") and path[len("/static/"):] in STATIC:
                name = path[len("/static/"):]
                self._send(200, _static(name), STATIC[name])
            elif path == "/api/state":
                self._json(200, self.app.state())
            elif path.startswith("/api/image/") and path.endswith(".png"):
                image_id = path[len("/api/image/"):-len(".png")]
                size = (query.get("size") or ["thumb"])[0]
                window = (query.get("window") or ["header"])[0]
                frame = (query.get("frame") or ["0"])[0]
                if not self.app.known(image_id) or size not in SIZES or window not in WINDOWS or not frame.isdigit():
                    self._text(404, "not found")
                    return
                try:
                    png = self.app.image(image_id, size, window, int(frame))
                except Exception as exc:      # a file that cannot be shown: a fixed line, never its text
                    self._text(422, f"this image cannot be displayed ({type(exc).__name__})")
                    return
                self._send(200, png, "image/png", {"Cache-Control": "private, max-age=3600"})
            else:
                self._text(404, "not found")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self):   # noqa: N802
        g = self._guard()
        if g is None:
            return
        path, _ = g
        if not self._origin_ok():
            self._text(403, "forbidden: cross-origin request")
            return
        try:
            n = int(self.headers.get("Content-Length") or 0)
            if n > 65536:
                self._text(413, "request too large")
                return
            body = json.loads(self.rfile.read(n) or b"{}")
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            self._text(400, "the body must be a JSON object")
            return
        try:
            if path == "/api/decide":
                row = self.app.decide(body)
            elif path == "/api/undo":
                row = self.app.undo(body)
            else:
                self._text(404, "not found")
                return
        except RequestError as exc:
            self._json(400, {"error": str(exc)})
            return
        self._json(200, {"row": row, "state": self.app.state()})


def make_server(app: ReviewApp, port: int = 0) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:port (0: a free port) for ``app``; not yet serving."""
    handler = type("Handler", (_Handler,), {"app": app, "port": 0})
    try:
        srv = ThreadingHTTPServer((HOST, port), handler)
    except OSError as exc:
        raise RequestError(f"cannot listen on {HOST}:{port} ({exc.strerror or type(exc).__name__}): choose "
                           "another --port") from None
    srv.daemon_threads = True
    handler.port = srv.server_address[1]
    return srv


def url_of(srv: ThreadingHTTPServer, app: ReviewApp) -> str:
    return f"http://{HOST}:{srv.server_address[1]}/?t={app.token}"


def prefetch(app: ReviewApp, stop: threading.Event) -> None:
    """Render every queued image's thumbnail into the cache, queue by queue, so the grid is
    fast from the first look (a failure is left for the page to report, never raised)."""
    seen = set()
    for ids in app.queues.queues.values():
        for i in ids:
            if stop.is_set():
                return
            if i in seen:
                continue
            seen.add(i)
            try:
                app.image(i, "thumb", "header", 0)
            except Exception:
                pass


def serve(review_dir: Path, *, port: int = 0, reviewer: str | None = None, tree: Path | None = None,
          audit_report: Path | None = None, spot: int = 20, seed: int = 0, open_browser: bool = False,
          ready: Callable[[str, ThreadingHTTPServer, ReviewApp], None] | None = None,
          prefetch_thumbnails: bool = True, whole_tree: bool = False) -> None:
    """Build the queues, serve the page until Ctrl-C (or ``srv.shutdown()`` from ``ready``);
    thumbnails are rendered into the cache by a background thread meanwhile."""
    from vindr_cli.dicomio.lazy import load_all

    load_all()      # the decoders pydicom registers, loaded now: never first inside a request's thread
    app = ReviewApp(build_queues(review_dir, tree=tree, audit_report=audit_report, spot=spot, seed=seed,
                                 whole_tree=whole_tree),
                    reviewer=reviewer)
    srv = make_server(app, port)
    url = url_of(srv, app)
    stop = threading.Event()
    worker = threading.Thread(target=prefetch, args=(app, stop), daemon=True, name="vindr-review-prefetch")
    if prefetch_thumbnails:
        worker.start()
    try:
        if ready is not None:
            ready(url, srv, app)
        if open_browser:
            webbrowser.open(url)
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        srv.server_close()
        if worker.is_alive():
            # let the thumbnail in hand finish: a daemon thread left inside a decoder at
            # interpreter exit can hang the exit (codec thread pools joined by atexit)
            worker.join(timeout=30)
