"""The web server around the Gradio app: logins, sessions, and the HTTP rules that keep a campaign private.

Gradio is mounted inside our own FastAPI app so that login, session and request checks happen before Gradio sees a
request:
- logins: our own page and `POST /login`; the scrypt check runs in a worker thread (never on the event loop), at most
  two at once, and repeated wrong passwords lock the name (and a flooding address) with `429` + `Retry-After`;
- sessions: random tokens in an HttpOnly, SameSite=Strict cookie, stored hashed in the campaign database; they end
  after idle time or age, at `POST /logout` (CSRF token required) and when the password changes or the login is
  disabled; they survive a server restart;
- requests: unsafe methods from another origin are refused; CORS allows no other origin; Gradio's upload, proxy,
  streaming and developer routes are closed; only image files (and, for admins, exports) are served, with `nosniff`;
  a Gradio session id belongs to the login that first used it; refusals from the app are 4xx, not 500;
- headers: `X-Frame-Options: DENY`, a CSP with `frame-ancestors 'none'`, `Referrer-Policy`, no caching of pages and
  API answers.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import html
import json
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Request

from capeval.errors import InputError

from annotation.auth import LoginThrottle
from annotation.service import Service

COOKIE = "capeval_session"
RASTER_TYPES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}
IMAGE_MEDIA = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
               ".bmp": "image/bmp", ".webp": "image/webp"}
EXPORT_TYPES = {".csv", ".jsonl", ".parquet"}
MAX_BODY = 1_000_000
LOGIN_THREADS = 1  # concurrent password checks (one core at most); more wait, past LOGIN_QUEUE get 429 at once
LOGIN_QUEUE = 256
# Gradio routes an annotation campaign never needs: uploads, URL proxying, streaming, developer and MCP tools.
BLOCKED_PREFIXES = ("/gradio_api/upload", "/gradio_api/proxy=", "/gradio_api/stream/", "/gradio_api/vibe",
                    "/gradio_api/undo-vibe", "/gradio_api/run-history", "/gradio_api/runs", "/gradio_api/profiling",
                    "/gradio_api/reset", "/gradio_api/process_recording", "/gradio_api/dev/", "/gradio_api/mcp",
                    "/gradio_api/custom_component", "/gradio_api/call/", "/gradio_api/deep_link", "/gradio_api/token",
                    "/monitoring", "/gradio_api/monitoring", "/gradio_api/file/", "/file=", "/file/", "/proxy=",
                    "/gradio_api/api/", "/api/", "/call/", "/upload", "/runs", "/dev/", "/vibe", "/reset")
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; media-src 'self' blob:; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")

# Set by app callbacks when they refuse a request, read by the guard to answer 4xx instead of Gradio's 500.
refusal: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("capeval_refusal", default=None)


def mark_refusal(status: int) -> None:
    """Called by a callback that refuses the request (403 forbidden, 400/409 malformed or stale)."""
    box = refusal.get()
    if box is not None:
        box["status"] = status


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Sessions:
    """Login sessions over the campaign store: idle and absolute expiry, one CSRF token each."""

    service: Service
    idle_seconds: float
    max_seconds: float
    _last_purge: float = 0.0

    def new(self, username: str) -> tuple[str, str]:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = time.time()
        self.service.store.create_session(username, token_hash(token), csrf, now)
        if now - self._last_purge > 600:
            self._last_purge = now
            self.service.store.purge_sessions(now - self.idle_seconds, now - self.max_seconds)
        return token, csrf

    def resolve(self, token: str | None) -> tuple[str, str] | None:
        """(username, csrf) of a live session; expired ones are deleted."""
        if not token or len(token) > 128:
            return None
        h = token_hash(token)
        rec = self.service.store.session(h)
        if rec is None:
            return None
        user, csrf, created, last_seen = rec
        now = time.time()
        if now - last_seen > self.idle_seconds or now - created > self.max_seconds:
            self.service.store.end_session(h)
            return None
        if now - last_seen > 60:
            self.service.store.touch_session(h, now)
        return user, csrf

    def end(self, token: str | None) -> None:
        if token:
            self.service.store.end_session(token_hash(token))


@dataclass
class WebOptions:
    """How the server is reached: behind a reverse proxy, trust its X-Forwarded-* headers; force Secure cookies."""

    trust_proxy: bool = False
    secure_cookies: bool | None = None  # None: Secure when the request came over HTTPS
    root_path: str = ""


@dataclass
class Guard:
    """Pure ASGI middleware enforcing the request rules in the module doc."""

    app: Any
    web: "Web"

    async def __call__(self, scope, receive, send):  # noqa: ANN001 - ASGI
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # the app uses none
                await send({"type": "websocket.close", "code": 1008})
                return
            return await self.app(scope, receive, send)
        path: str = scope["path"]
        root = scope.get("root_path", "") or ""
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        method = scope["method"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        send = self._with_headers(send, path)

        if method not in ("GET", "HEAD", "OPTIONS") and not self.web.same_origin(headers):
            return await _plain(send, 403, "cross-origin request refused")
        if any(path.startswith(p) for p in BLOCKED_PREFIXES):
            return await _plain(send, 403 if path.startswith("/gradio_api/upload") else 404, "not available")
        if path.rstrip("/") == "/logout" and method != "POST":
            return await _plain(send, 405, "log out with POST (the Log out button)", {"allow": "POST"})
        if path in ("/login", "/login/", "/logout", "/logout/", "/session", "/health"):
            return await self.app(scope, receive, send)

        user = self.web.user_of(headers.get("cookie", ""))
        scope["capeval_user"] = user
        scope["capeval_base"] = self.web.base_url(scope, headers)
        if user is None:
            if path in ("/", "") and method in ("GET", "HEAD"):
                return await _redirect(send, "login")
            if path.startswith(("/assets/", "/static/", "/svelte/", "/theme.css", "/favicon.ico")):
                return await self.app(scope, receive, send)
            return await _plain(send, 401, "log in first", {"x-capeval-login": "required"})

        if path.startswith("/gradio_api/file="):
            target = path[len("/gradio_api/file="):]
            allowed = RASTER_TYPES | (EXPORT_TYPES if self.web.service.role(user) == "admin" else set())
            if "://" in target or Path(target).suffix.lower() not in allowed or not self.web.servable(target):
                return await _plain(send, 404, "not found")
            return await self.app(scope, receive, send)

        # a Gradio session id (sent by the page with every event) is bound to the login that first used it
        sh = None
        if path.startswith("/gradio_api/heartbeat/"):
            sh = path.rsplit("/", 1)[-1]
        elif scope.get("query_string"):
            sh = (parse_qs(scope["query_string"].decode("latin-1")).get("session_hash") or [None])[0]
        body = b""
        if method == "POST" and path.startswith(("/gradio_api/queue/join", "/gradio_api/run/", "/gradio_api/cancel",
                                                 "/run/", "/queue/join")):
            body, ok = await _read_body(receive)
            if not ok:
                return await _plain(send, 413, "request too large")
            try:
                doc = json.loads(body or b"{}")
                sh = doc.get("session_hash") if isinstance(doc, dict) else None
            except ValueError:
                return await _plain(send, 400, "expected JSON")
            receive = _replay(body)
        if sh is not None and not self.web.bind_session_hash(str(sh), user):
            return await _plain(send, 403, "this session belongs to another login")

        box: dict[str, int] = {}
        tok = refusal.set(box)
        try:
            await self.app(scope, receive, self._remap(send, box))
        finally:
            refusal.reset(tok)

    def _with_headers(self, send, path: str):  # noqa: ANN001
        extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                 (b"content-security-policy", CSP.encode()), (b"referrer-policy", b"same-origin"),
                 (b"cross-origin-opener-policy", b"same-origin")]
        if not path.startswith(("/assets/", "/static/", "/svelte/", "/gradio_api/file=", "/image/")):
            extra.append((b"cache-control", b"no-store"))

        async def wrapped(msg):  # noqa: ANN001
            if msg["type"] == "http.response.start":
                names = {k.lower() for k, _ in extra}
                hdrs = [(k, v) for k, v in msg.get("headers", []) if k.lower() not in names]
                msg = {**msg, "headers": hdrs + extra}
            await send(msg)

        return wrapped

    @staticmethod
    def _remap(send, box: dict[str, int]):  # noqa: ANN001
        async def wrapped(msg):  # noqa: ANN001
            if msg["type"] == "http.response.start" and msg["status"] == 500 and box.get("status"):
                msg = {**msg, "status": box["status"]}
            await send(msg)

        return wrapped


async def _read_body(receive) -> tuple[bytes, bool]:  # noqa: ANN001
    chunks, size = [], 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return b"", False
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return b"", False
        chunks.append(chunk)
        if not msg.get("more_body"):
            return b"".join(chunks), True


def _replay(body: bytes):
    sent = [False]

    async def receive():
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # like a client that keeps the connection open
        return {"type": "http.disconnect"}

    return receive


async def _plain(send, status: int, text: str, headers: dict[str, str] | None = None) -> None:  # noqa: ANN001
    body = json.dumps({"error": text}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send, location: str) -> None:  # noqa: ANN001
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def _cookie_value(cookie_header: str, name: str) -> str | None:
    for part in cookie_header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


@dataclass
class Web:
    """Everything the HTTP layer needs about one running campaign."""

    service: Service
    options: WebOptions
    cache_dir: Path
    sessions: Sessions = field(init=False)
    throttle: LoginThrottle = field(init=False)
    _bound: OrderedDict[str, str] = field(default_factory=OrderedDict)
    _bind_lock: threading.Lock = field(default_factory=threading.Lock)
    _login_waiting: int = 0

    def __post_init__(self) -> None:
        c = self.service.campaign
        self.sessions = Sessions(self.service, c.session_idle_minutes * 60.0, c.session_max_hours * 3600.0)
        self.throttle = LoginThrottle(c.login_max_failures, float(c.login_lockout_seconds))
        self._login_limit = None

    def user_of(self, cookie_header: str) -> str | None:
        s = self.sessions.resolve(_cookie_value(cookie_header, COOKIE))
        return None if s is None else s[0]

    def same_origin(self, headers: dict[str, str]) -> bool:
        origin = headers.get("origin")
        if origin is None:
            return True
        host = headers.get("x-forwarded-host") if self.options.trust_proxy and headers.get("x-forwarded-host") \
            else headers.get("host", "")
        return urlsplit(origin).netloc.lower() == host.split(",")[0].strip().lower()

    def base_url(self, scope: dict, headers: dict[str, str]) -> str:
        """The app's URL as the browser sees it (scheme, host, root path; X-Forwarded-* only behind a proxy)."""
        scheme = scope.get("scheme", "http")
        host = headers.get("host", "")
        if self.options.trust_proxy:
            scheme = headers.get("x-forwarded-proto", scheme).split(",")[0].strip()
            host = headers.get("x-forwarded-host", host).split(",")[0].strip()
        return f"{scheme}://{host}{self.options.root_path or ''}"

    def servable(self, target: str) -> bool:
        """Only files inside this server's Gradio cache (copies of campaign images and exports)."""
        try:
            p = Path(target).resolve()
        except (OSError, ValueError):
            return False
        return self.cache_dir.resolve() in p.parents and p.is_file()

    def bind_session_hash(self, sh: str, user: str) -> bool:
        if not sh or len(sh) > 128:
            return False
        with self._bind_lock:
            owner = self._bound.get(sh)
            if owner is None:
                self._bound[sh] = user
                if len(self._bound) > 200_000:
                    self._bound.popitem(last=False)
                return True
            return owner == user

    def secure(self, scheme: str) -> bool:
        return self.options.secure_cookies if self.options.secure_cookies is not None else scheme == "https"


def login_page(campaign_name: str, message: str = "") -> str:
    """The login form; the campaign name and any message are escaped (they come from the YAML and the server)."""
    name = html.escape(campaign_name)
    msg = html.escape(message)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} · log in</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f5f5f7; margin: 0; }}
main {{ max-width: 24rem; margin: 12vh auto; background: #fff; padding: 2rem; border-radius: 12px;
        box-shadow: 0 2px 12px rgba(0,0,0,.08); }}
h1 {{ font-size: 1.3rem; margin-top: 0; }} label {{ display: block; margin-top: 1rem; font-weight: 600; }}
input {{ width: 100%; box-sizing: border-box; padding: .6rem; font-size: 1rem; margin-top: .3rem; }}
button {{ margin-top: 1.4rem; width: 100%; padding: .7rem; font-size: 1rem; background: #ea580c; color: #fff;
          border: 0; border-radius: 8px; cursor: pointer; }}
#msg {{ color: #b91c1c; min-height: 1.2em; margin-top: 1rem; }}
</style></head>
<body><main>
<h1 id="campaign">{name}</h1>
<p>Log in with the name and password your researcher gave you.</p>
<form id="login" method="post" action="login">
<label for="username">Name</label><input id="username" name="username" autocomplete="username" required
  aria-label="username">
<label for="password">Password</label><input id="password" name="password" type="password"
  autocomplete="current-password" required aria-label="password">
<button type="submit">Log in</button>
<p id="msg" role="alert">{msg}</p>
</form>
<script>
document.getElementById('login').addEventListener('submit', async (e) => {{
  e.preventDefault();
  const msg = document.getElementById('msg');
  msg.textContent = '';
  const r = await fetch('login', {{method: 'POST', body: new URLSearchParams(new FormData(e.target)),
                                   headers: {{'Accept': 'application/json'}}}});
  if (r.ok) {{ window.location.replace('./'); return; }}
  let text = 'Log in failed.';
  try {{ text = (await r.json()).error || text; }} catch (err) {{}}
  msg.textContent = text;
}});
</script>
</main></body></html>"""


def build_server(service: Service, demo: Any, web: Web):  # noqa: ANN401
    """The FastAPI app: our login/logout/session routes, the guard, and Gradio mounted at the root."""
    import anyio
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
    from starlette.middleware.cors import CORSMiddleware

    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    api.add_middleware(CORSMiddleware, allow_origins=[], allow_credentials=False)  # no other origin may read
    limiter = anyio.CapacityLimiter(LOGIN_THREADS)
    campaign = service.campaign

    def client_ip(request: Request) -> str:
        if web.options.trust_proxy:
            fwd = request.headers.get("x-forwarded-for")
            if fwd:
                return fwd.split(",")[0].strip()
        return request.client.host if request.client else "?"

    def wants_html(request: Request) -> bool:
        return "text/html" in request.headers.get("accept", "")

    @api.get("/login", response_class=HTMLResponse)
    def login_form() -> HTMLResponse:
        return HTMLResponse(login_page(campaign.name))

    @api.post("/login")
    async def login(request: Request):
        form = await request.form()
        username = str(form.get("username") or "").strip()[:128]
        password = str(form.get("password") or "")
        ip = client_ip(request)

        def refuse(status: int, text: str, retry: float | None = None):
            headers = {"Retry-After": str(max(1, int(retry + 0.999)))} if retry else {}
            if wants_html(request):
                return HTMLResponse(login_page(campaign.name, text), status_code=status, headers=headers)
            return JSONResponse({"error": text}, status_code=status, headers=headers)

        now = time.time()
        wait = web.throttle.retry_after(username, ip, now)
        if wait > 0:
            return refuse(429, f"Too many failed logins; try again in {int(wait + 0.999)} s.", wait)
        if web._login_waiting >= LOGIN_QUEUE:
            return refuse(429, "The server is busy; try again in a moment.", 2)
        web._login_waiting += 1
        try:
            ok = await anyio.to_thread.run_sync(service.login, username, password, limiter=limiter)
        finally:
            web._login_waiting -= 1
        if not ok:
            wait = web.throttle.failed(username, ip, time.time())
            if wait > 0:
                return refuse(429, f"Too many failed logins; try again in {int(wait + 0.999)} s.", wait)
            return refuse(401, "Wrong name or password.")
        web.throttle.succeeded(username)
        token, _csrf = await anyio.to_thread.run_sync(web.sessions.new, username)
        resp = RedirectResponse("./", status_code=303) if wants_html(request) else JSONResponse({"success": True})
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=web.secure(request.url.scheme),
                        max_age=int(web.sessions.max_seconds), path=(web.options.root_path or "") + "/")
        return resp

    @api.get("/session")
    def session(request: Request):
        s = web.sessions.resolve(request.cookies.get(COOKIE))
        if s is None:
            return JSONResponse({"error": "log in first"}, status_code=401)
        return {"user": s[0], "csrf": s[1], "idle_minutes": campaign.session_idle_minutes}

    @api.post("/logout")
    async def logout(request: Request):
        token = request.cookies.get(COOKIE)
        s = web.sessions.resolve(token)
        sent = request.headers.get("x-csrf-token")
        if sent is None and "form" in request.headers.get("content-type", ""):
            sent = str((await request.form()).get("csrf") or "")
        if s is None:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        if not sent or not secrets.compare_digest(sent, s[1]):
            return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
        web.sessions.end(token)
        resp = RedirectResponse("login", status_code=303) if wants_html(request) else JSONResponse({"success": True})
        resp.delete_cookie(COOKIE, path=(web.options.root_path or "") + "/")
        return resp

    @api.get("/health")
    def health():
        return {"ok": True}

    @api.get("/image/{public_id}")
    def image(public_id: str, request: Request):
        """An item's image for the annotator it is assigned to (by opaque item id; image types only)."""
        from fastapi.responses import FileResponse

        from capeval.errors import CapevalError

        try:
            path = service.image_file(request.scope.get("capeval_user"), public_id)
        except CapevalError:
            return JSONResponse({"error": "not found"}, status_code=404)
        media = IMAGE_MEDIA.get(path.suffix.lower())
        if media is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    def auth_dependency(request: Request) -> str | None:
        if "capeval_user" in request.scope:
            return request.scope["capeval_user"]
        return web.user_of(request.headers.get("cookie", ""))

    from annotation.app import CSS, head_html, shortcut_js

    api = gr.mount_gradio_app(
        api, demo, path="/", auth_dependency=auth_dependency, ssr_mode=False, show_error=True,
        allowed_paths=[str(service.images.folder)], footer_links=[], run_history=False, css=CSS,
        js=shortcut_js(service), head=head_html(), max_file_size="1kb", enable_monitoring=False, mcp_server=False,
        pwa=False, root_path=web.options.root_path or None)
    gradio_app = api.routes[-1].app
    gradio_app.uploaded_file_dir = str(web.cache_dir)
    return Guard(api, web)


def private_cache_dir() -> Path:
    """A fresh owner-only folder for this server's served copies and exports (removed at shutdown); folders left by
    servers that were killed are removed when the next one starts."""
    base = Path(tempfile.gettempdir())
    for old in base.glob("capeval-annotate-*"):
        try:
            pid = int(old.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _alive(pid) and old.is_dir() and old.stat().st_uid == os.getuid():
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"capeval-annotate-{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket up front so a port in use is one clear message, not a traceback."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit this: without it, a response's header and body writes wait ~40 ms for the
    # client's delayed ACK (Nagle), on every request
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48):  # EADDRINUSE (Linux, macOS)
            raise InputError(f"port {port} on {host} is already in use; choose another with --port") from None
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
