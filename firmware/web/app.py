"""The local web page and JSON API (microdot), a thin layer over the station facade.

Public API:
- `create_app(station, config_path, state_dir, clock=time.monotonic) -> microdot.Microdot`
- `await start(app, host, port, ssl_context=None) -> asyncio.Server` (already accepting)
- `await serve(app, host, port, ssl_context=None)`: start and serve until cancelled.

The station facade used here: `status()`, `config`, `await apply_config(cfg)`,
`place_call(target)`, `hangup()`, `open_door(by, relay)`, `events(since)`,
`subscribe_events(cb)`, `simulated`, `press_button(role, press_ms)`, `set_input(role, active)`,
`metrics()`, `log_event(type, **fields)`.

Who may do what (docs/API.md has the details):
- Before the admin password exists every page leads to /setup and the API answers 403, except
  `POST /api/setup`.
- The API accepts HTTP Basic (`admin`) or the page's session cookie. State-changing requests
  need, with the cookie, the session's `X-CSRF-Token`; with Basic, `Content-Type:
  application/json` (a cross-site form cannot send it without a CORS preflight, which this
  server never grants), because browsers resend cached Basic credentials on their own.
  Any state-changing request whose Origin / Sec-Fetch-Site says cross-site is refused.
- Failed passwords (form or Basic) count per client address (IPv6: per /64) and globally;
  after five, attempts are refused with 429 for an exponentially growing time, and each failure
  is logged as `auth_failed`. scrypt runs on one worker thread, never on the event loop.
- Connections, request heads and idle clients are bounded before microdot sees a byte
  (firmware/web/limits.py); JSON bodies nest at most MAX_JSON_DEPTH deep.
- Every request whose Host is not one of the station's own names gets 421 before anything else
  runs (DNS rebinding, firmware/web/hosts.py). Setting the first password from another machine
  than the station itself needs the one-time setup code (firmware/web/setupcode.py); wrong codes
  count like wrong passwords.
"""

import asyncio
import base64
import binascii
import concurrent.futures
import json
import logging
import os
import time
from typing import TYPE_CHECKING

from microdot import Microdot, Request, Response

from firmware import config as configuration
from firmware.compat import compare_digest
from firmware.runtime import netaddrs
from firmware.web import hosts, limits, pages
from firmware.web.metrics import CONTENT_TYPE as METRICS_TYPE
from firmware.web.metrics import prometheus_text
from firmware.web.passwords import AdminPassword, PasswordAlreadySet, weakness
from firmware.web.sessions import LoginThrottle, SessionStore, client_key
from firmware.web.setupcode import SetupCode
from firmware.web.stream import EventStreams

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from typing import Any

    from firmware.runtime.station import Station
    from firmware.web.sessions import Session

MAX_BODY = 64 * 1024
REQUEST_TIMEOUT = 10.0  # seconds for a whole request and its response
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
EVENTS_DEFAULT_LIMIT, EVENTS_MAX_LIMIT = 100, 1000
MAX_PRESS_MS = 10000
MAX_JSON_DEPTH = 16
MAX_PENDING_CHECKS = 4  # password checks queued for the scrypt worker; beyond: 503

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
ERROR_TEXT = {400: "bad request", 404: "not found", 405: "method not allowed",
              413: f"request body too large (at most {MAX_BODY} bytes)",
              500: "internal error"}


class ApiError(Exception):
    """Raised by request helpers; becomes a JSON error response."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        Exception.__init__(self, message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> "Response":
    # microdot sends a dict body as JSON; its hint says str | bytes (also below)
    return Response({"error": message}, status, headers)  # type: ignore[arg-type]


def _client(request: "Request") -> str:
    addr = request.client_addr
    return str(addr[0]) if isinstance(addr, (tuple, list)) and addr else "unknown"


def _cross_site(request: "Request") -> bool:
    """True when the browser tells us the request comes from another site. Sec-Fetch-Site is
    the clearest signal; without it, an Origin naming another host. `Origin: null` is not
    evidence: with `Referrer-Policy: no-referrer` our own forms are posted with it."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in ("cross-site", "same-site")
    origin = request.headers.get("Origin", "null")
    return origin != "null" and origin.partition("://")[2] != request.headers.get("Host", "")


def _is_json(request: "Request") -> bool:
    return (request.content_type or "").split(";")[0].strip().lower() == "application/json"


def _json_body(request: "Request", required: bool = True) -> "dict[str, Any]":
    """The request body parsed as a JSON object ({} for an empty optional body)."""
    if not request.body:
        if required:
            raise ApiError(400, "a JSON object body is required")
        return {}
    try:
        doc = json.loads(request.body)
    except RecursionError:
        doc = None  # deeper than the parser goes: caught below
    except ValueError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if doc is None or limits.json_depth(doc) > MAX_JSON_DEPTH:
        raise ApiError(400, f"the JSON body nests too deeply (at most {MAX_JSON_DEPTH} levels)")
    if not isinstance(doc, dict):
        raise ApiError(400, "the body must be a JSON object")
    return doc


def _int_arg(request: "Request", name: str, default: int | None, low: int, high: int) -> int | None:
    text = request.args.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and low <= int(text) <= high):
        raise ApiError(400, f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _api(handler: "Callable") -> "Callable":
    """Turn ApiError raised inside a handler into its JSON response."""
    async def wrapped(request: "Request", *args: "Any", **kwargs: "Any") -> "Any":
        try:
            return await handler(request, *args, **kwargs)
        except ApiError as exc:
            return _error(exc.status, exc.message, exc.headers)
    return wrapped


class _Web:
    """The state behind the routes: password, sessions, throttle, static files."""

    hosts: "hosts.OwnHosts"  # set by create_app
    streams: "EventStreams"  # set by create_app

    def __init__(self, station: "Station", config_path: str, state_dir: str,
                 clock: "Callable[[], float]") -> None:
        self.station = station
        self.config_path = config_path
        self.admin = AdminPassword(state_dir)
        # logged-in sessions survive a restart, bound to the password (web/sessions.py)
        self.sessions = SessionStore(clock, os.path.join(state_dir, "sessions.json"),
                                     lambda: self.admin.fingerprint)
        self.throttle = LoginThrottle(clock)
        self.scrypt = concurrent.futures.ThreadPoolExecutor(1, "doorline-scrypt")
        self.checking: set[str] = set()  # client keys with a password check in progress
        self.secure_cookies = bool(station.config.web.https)
        self.config_lock = asyncio.Lock()
        self.static, self.index_template, self.version = pages.load_static()
        self.static_gz: dict[str, bytes] = {}  # gzip-compressed static files, made when asked
        self.setup_code = SetupCode(state_dir)
        if self.admin.is_set:
            self.setup_code.remove()
        else:
            log = logging.getLogger("doorline.web")
            try:
                log.warning("no admin password is set yet. To set it from another machine, "
                            "open the web page and give this one-time setup code: %s (also in "
                            "%s; not needed on the station itself, void once the password is "
                            "set)", self.setup_code.ensure(), self.setup_code.path)
            except OSError as exc:  # only the station itself can set the password then
                log.error("cannot store the setup code in %s (%s): the first admin password "
                          "can only be set from the station itself", self.setup_code.path,
                          exc.strerror)

    # -- cookies and sessions ----------------------------------------------------------------
    @property
    def cookie_name(self) -> str:
        return "__Host-doorline_session" if self.secure_cookies else "doorline_session"

    def _cookie(self, value: str, extra: str = "") -> str:
        secure = "; Secure" if self.secure_cookies else ""
        return f"{self.cookie_name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{extra}"

    def set_session_cookie(self, response: "Response", session: "Session") -> "Response":
        if "Set-Cookie" not in response.headers:
            response.headers["Set-Cookie"] = []
        response.headers["Set-Cookie"].append(self._cookie(session.id))
        return response

    def clear_session_cookie(self, response: "Response") -> "Response":
        if "Set-Cookie" not in response.headers:
            response.headers["Set-Cookie"] = []
        response.headers["Set-Cookie"].append(self._cookie("", "; Max-Age=0"))
        return response

    def session_of(self, request: "Request") -> "Session | None":
        return self.sessions.get(request.cookies.get(self.cookie_name))

    def form_session(self, request: "Request") -> "Session":
        """The pre-login session for a setup/login form: reuse the cookie's or make one."""
        session = self.session_of(request)
        if session is None or session.authenticated:
            session = self.sessions.create(authenticated=False)
        return session

    # -- authentication ------------------------------------------------------------------------
    async def off_loop(self, function: "Callable", *args: "Any") -> "Any":
        """`function(*args)` (scrypt) on the single worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self.scrypt, function, *args)

    async def check_password(self, request: "Request", password: str | None, via: str) -> bool:
        """Verify with throttling and logging; returns True, or raises ApiError(429/503)."""
        client = _client(request)
        wait = self.throttle.retry_after(client)
        if wait > 0:
            raise ApiError(429, f"too many failed attempts; try again in {int(wait) + 1} s",
                           {"Retry-After": str(int(wait) + 1)})
        key = client_key(client)
        if self.admin.known(password):  # the last password that verified: no scrypt needed
            ok = True
        elif key in self.checking:  # one check at a time per client: the throttle keeps up
            raise ApiError(429, "a password check from this client is in progress",
                           {"Retry-After": "1"})
        elif len(self.checking) >= MAX_PENDING_CHECKS:
            raise ApiError(503, "too many password checks at once; try again",
                           {"Retry-After": "1"})
        else:
            self.checking.add(key)
            try:
                ok = await self.off_loop(self.admin.verify, password)
            finally:
                self.checking.discard(key)
        if ok:
            self.throttle.succeeded(client)
            return True
        self.throttle.failed(client)
        self.station.log_event("auth_failed", client=client, via=via, path=request.path)
        return False

    async def authenticate_api(self, request: "Request") -> str:
        """'basic' or 'session' for a valid caller; raises ApiError(401/429) otherwise."""
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, encoded = header.partition(" ")
            user, password = None, None
            if scheme.lower() == "basic":
                try:
                    user, _, password = base64.b64decode(encoded.strip(), validate=True) \
                        .decode("utf-8").partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    pass
            if await self.check_password(request, password if user == "admin" else None,
                                         "basic"):
                return "basic"
            raise ApiError(401, "wrong user name or password", self._challenge(request))
        session = self.session_of(request)
        if session is not None and session.authenticated:
            request.g.session = session
            return "session"
        raise ApiError(401, "authentication required: HTTP Basic as admin, or log in",
                       self._challenge(request))

    @staticmethod
    def _challenge(request: "Request") -> dict[str, str]:
        # The page's own fetches carry X-CSRF-Token: leave out the Basic challenge for them so
        # an expired session sends the user to the login form, not to a browser dialog.
        if "X-CSRF-Token" in request.headers:
            return {}
        return {"WWW-Authenticate": 'Basic realm="Doorline", charset="UTF-8"'}

    async def guard_api(self, request: "Request") -> "Response | None":
        """None when the API request may proceed, else the refusal response."""
        if not self.admin.is_set:
            if request.path == "/api/setup":
                return None
            return _error(403, "no admin password is set yet: POST /api/setup "
                               '{"password": ..., "setup_code": ...} or open the web page first')
        if request.path == "/api/setup":
            return None
        try:
            how = await self.authenticate_api(request)
        except ApiError as exc:
            return _error(exc.status, exc.message, exc.headers)
        request.g.auth = how
        if request.method not in STATE_CHANGING:
            return None
        if how == "basic" and not _is_json(request):
            return _error(415, "requests authenticated with HTTP Basic that change state must "
                               "have Content-Type: application/json")
        if how == "session":
            token = request.headers.get("X-CSRF-Token", "")
            if not compare_digest(token.encode(), request.g.session.csrf.encode()):
                return _error(403, "missing or wrong X-CSRF-Token")
        return None

    def check_setup_code(self, request: "Request", code: str | None) -> None:
        """Returns when `request` may set the first password (it comes from the station itself,
        or gives the setup code); raises ApiError(403/429) otherwise."""
        client = _client(request)
        if hosts.is_loopback(client):
            return
        wait = self.throttle.retry_after(client)
        if wait > 0:
            raise ApiError(429, f"too many failed attempts; try again in {int(wait) + 1} s",
                           {"Retry-After": str(int(wait) + 1)})
        if self.setup_code.matches(code):
            self.throttle.succeeded(client)
            return
        self.throttle.failed(client)
        self.station.log_event("auth_failed", client=client, via="setup_code", path=request.path)
        raise ApiError(403, ("wrong setup code. " if code else "a setup code is needed. ") +
                       pages.SETUP_CODE_WHERE)

    # -- config --------------------------------------------------------------------------------
    async def put_config(self, partial: dict) -> "dict | Response":
        station = self.station
        async with self.config_lock:
            current = station.config
            try:
                restored = configuration.unredact(partial, current)
            except TypeError:  # a malformed door.codes entry; validate() names the field
                restored = partial
            try:
                cfg = configuration.validate(configuration.merge(current.to_dict(), restored),
                                             board=station.board_info())
            except configuration.ConfigError as exc:
                return Response({"errors": exc.errors}, 400)  # type: ignore[arg-type]
            # Apply first, save after: a configuration the station cannot run never reaches
            # the disk, so a restart cannot trip over it.
            try:
                changed = await station.apply_config(cfg)
            except configuration.ConfigError as exc:
                # The station could not use it and went back to the old one.
                return Response({"errors": exc.errors},  # type: ignore[arg-type]
                                status_code=400)
            except Exception as exc:  # the station rolled back; say so, keep serving
                return _error(500, f"could not apply the configuration: {exc}")
            try:
                configuration.save_atomic(self.config_path, cfg)
            except OSError as exc:
                try:
                    await station.apply_config(current)
                except Exception:  # the 500 below is the answer either way
                    pass
                return _error(500, f"could not save the configuration: {exc.strerror}")
            station.log_event("config_saved", sections=sorted(str(k) for k in partial),
                              changed=changed)
            return Response(configuration.redacted(cfg))  # type: ignore[arg-type]  # JSON


def create_app(station: "Station", config_path: str, state_dir: str,
               clock: "Callable[[], float]" = time.monotonic,
               addresses: "Callable" = netaddrs.interface_addresses) -> "Microdot":
    """The microdot app for `station`; `config_path` is saved by PUT /api/config and
    `state_dir` holds admin.json. `clock` (monotonic seconds) drives session expiry and the
    login back-off; `addresses()` gives the station's IP addresses (its own Host names)."""
    Request.max_content_length = MAX_BODY
    Request.max_body_length = MAX_BODY
    web = _Web(station, config_path, state_dir, clock)
    web.streams = EventStreams(station.subscribe_events, station.events, clock)
    app = Microdot()
    app.doorline = web  # type: ignore[attr-defined]  # the state, for the tests to reach

    def html(text: str, status: int = 200, headers: dict | None = None) -> "Response":
        headers = dict(headers or {})
        headers["Content-Type"] = "text/html; charset=utf-8"
        return Response(text, status, headers)

    def redirect(location: str) -> "Response":
        return Response(status_code=303, headers={"Location": location})

    # -- hooks -----------------------------------------------------------------------------------
    @app.before_request
    async def guard(request: "Request") -> "Any":
        request.g.auth = None
        request.g.session = None
        if request.method in STATE_CHANGING and _cross_site(request):
            return _error(403, "cross-site requests are refused")
        if request.path.startswith("/api/") or request.path == "/metrics":
            return await web.guard_api(request)
        return None

    async def add_headers(request: "Request", response: "Response") -> "Response":
        if response.reason is None:  # microdot says "N/A" for all but 200
            response.reason = reason_phrase(response.status_code)
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        if "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    app.after_request(add_headers)
    app.after_error_request(add_headers)
    web.hosts = hosts.OwnHosts(addresses, netaddrs.host_name,
                               lambda: hosts.config_names(station.config.web), clock)
    hosts.refuse_foreign_hosts(app, web.hosts, add_headers)

    for status, text in ERROR_TEXT.items():
        app.errorhandler(status)(_error_handler(status, text))

    # -- pages -----------------------------------------------------------------------------------
    @app.get("/")
    async def index(request: "Request") -> "Any":
        if not web.admin.is_set:
            return redirect("/setup")
        session = web.session_of(request)
        if session is None or not session.authenticated:
            return redirect("/login")
        return html(pages.index_page(web.index_template, session.csrf, web.version))

    def static_file(request: "Request", name: str) -> "Response":
        """A static file, gzip-compressed for clients that take it (compressed once, when
        first asked for; kept only when smaller)."""
        headers = {"Content-Type": pages.STATIC_TYPES[name],
                   "Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
        body = web.static[name]
        if pages.accepts_gzip(request.headers.get("Accept-Encoding")):
            if name not in web.static_gz:
                web.static_gz[name] = pages.gzipped(body)
            if len(web.static_gz[name]) < len(body):
                body = web.static_gz[name]
                headers["Content-Encoding"] = "gzip"
        return Response(body, 200, headers)

    @app.get("/favicon.ico")
    async def favicon(request: "Request") -> "Any":
        return static_file(request, "icon.svg")

    @app.get("/static/<name>")
    async def static(request: "Request", name: str) -> "Any":
        if name not in web.static:
            return _error(404, "not found")
        return static_file(request, name)

    @app.get("/setup")
    async def setup_form(request: "Request") -> "Any":
        if web.admin.is_set:
            return redirect("/login")
        session = web.form_session(request)
        page = pages.setup_page(session.csrf, web.version, need_code=_needs_code(request))
        return web.set_session_cookie(html(page), session)

    @app.post("/setup")
    async def setup_submit(request: "Request") -> "Any":
        if web.admin.is_set:
            return redirect("/login")
        session, form = _checked_form(web, request)
        if session is None:
            return html(pages.message_page("Form expired", "Reload the page and try again.",
                                           web.version), 403)
        need_code = _needs_code(request)
        try:
            web.check_setup_code(request, form.get("setup_code", ""))
        except ApiError as exc:
            return html(pages.setup_page(session.csrf, web.version, exc.message, need_code),
                        exc.status, exc.headers)
        password = form.get("password", "")
        error = weakness(password)
        if not error and password != form.get("confirm"):
            error = "the two passwords differ"
        if error:
            return html(pages.setup_page(session.csrf, web.version, error, need_code), 400)
        try:
            await web.off_loop(web.admin.set, password)
        except PasswordAlreadySet:
            return redirect("/login")
        web.setup_code.remove()
        station.log_event("admin_password_set", client=_client(request), via="form")
        return _log_in(web, session, redirect("/"))

    @app.get("/login")
    async def login_form(request: "Request") -> "Any":
        if not web.admin.is_set:
            return redirect("/setup")
        current = web.session_of(request)
        if current is not None and current.authenticated:
            return redirect("/")
        session = web.form_session(request)
        return web.set_session_cookie(html(pages.login_page(session.csrf, web.version)), session)

    @app.post("/login")
    async def login_submit(request: "Request") -> "Any":
        if not web.admin.is_set:
            return redirect("/setup")
        session, form = _checked_form(web, request)
        if session is None:
            return html(pages.message_page("Form expired", "Reload the page and try again.",
                                           web.version), 403)
        try:
            ok = await web.check_password(request, form.get("password", ""), "form")
        except ApiError as exc:
            return html(pages.login_page(session.csrf, web.version, exc.message), exc.status,
                        exc.headers)
        if not ok:
            return html(pages.login_page(session.csrf, web.version, "Wrong password."), 401)
        station.log_event("login", client=_client(request))
        return _log_in(web, session, redirect("/"))

    @app.post("/logout")
    async def logout(request: "Request") -> "Any":
        session = web.session_of(request)
        if session is not None:
            form = request.form or {}
            token = request.headers.get("X-CSRF-Token") or form.get("csrf") or ""
            if not compare_digest(token.encode(), session.csrf.encode()):
                return html(pages.message_page("Form expired", "Reload the page and try again.",
                                               web.version), 403)
            web.sessions.drop(session.id)
        return web.clear_session_cookie(redirect("/login"))

    # -- API -------------------------------------------------------------------------------------
    @app.post("/api/setup")
    @_api
    async def api_setup(request: "Request") -> "Any":
        if web.admin.is_set:
            return _error(409, "the admin password is already set")
        if not _is_json(request):
            return _error(415, "Content-Type must be application/json")
        body = _json_body(request)
        web.check_setup_code(request, body.get("setup_code"))
        try:
            await web.off_loop(web.admin.set, body.get("password"))
        except PasswordAlreadySet:
            return _error(409, "the admin password is already set")
        except ValueError as exc:
            return _error(400, str(exc))
        web.setup_code.remove()
        station.log_event("admin_password_set", client=_client(request), via="api")
        return {"ok": True}

    @app.post("/api/password")
    @_api
    async def api_password(request: "Request") -> "Any":
        body = _json_body(request)
        if request.g.auth == "session" and not await web.check_password(
                request, body.get("current"), "password_change"):
            return _error(403, "the current password is wrong")
        new = body.get("password")
        if not isinstance(new, str):
            return _error(400, "password must be a string")
        try:
            await web.off_loop(lambda: web.admin.set(new, replace=True))
        except ValueError as exc:
            return _error(400, str(exc))
        web.sessions.drop_all()  # every session ends, here and after a restart
        station.log_event("admin_password_set", client=_client(request), via="change")
        if request.g.session is None:
            return {"ok": True}
        # the page that changed it stays logged in, in a new session (with a new CSRF token)
        session = web.sessions.create(authenticated=True)
        return web.set_session_cookie(
            Response({"ok": True, "csrf": session.csrf}), session)  # type: ignore[arg-type]

    @app.get("/api/status")
    async def api_status(request: "Request") -> "Any":
        status = dict(station.status())
        status["simulated"] = bool(station.simulated)
        return status

    @app.get("/api/board")
    async def api_board(request: "Request") -> "Any":
        info = station.board_info()
        if info is None:
            return _error(404, "this station runs without a board")
        return info

    @app.get("/api/config/warnings")
    async def api_config_warnings(request: "Request") -> "Any":
        return {"warnings": configuration.warnings(station.config, station.board_info())}

    @app.post("/api/call")
    @_api
    async def api_call(request: "Request") -> "Any":
        target = _json_body(request).get("target")
        if not isinstance(target, str) or not target.strip() or len(target) > 1024:
            return _error(400, "target must be a SIP URI string, e.g. sip:flat1@example.org")
        try:
            call_id = station.place_call(target.strip())
        except ValueError as exc:
            return _error(400, str(exc))
        return {"id": call_id}

    @app.post("/api/hangup")
    @_api
    async def api_hangup(request: "Request") -> "Any":
        _json_body(request, required=False)
        station.hangup()
        return {"ok": True}

    @app.post("/api/audio/test-speaker")
    @_api
    async def api_test_speaker(request: "Request") -> "Any":
        _json_body(request, required=False)
        if not station.test_speaker():
            return _error(409, "the speaker is in use by a call")
        return {"ok": True}

    @app.post("/api/door/open")
    @_api
    async def api_door_open(request: "Request") -> "Any":
        relay = _json_body(request, required=False).get("relay", "door")
        if not isinstance(relay, str) or not relay or len(relay) > 32:
            return _error(400, 'relay must be a relay role such as "door" or "gate"')
        try:
            station.open_door(by="web" if request.g.auth == "session" else "api", relay=relay)
        except ValueError as exc:
            return _error(400, str(exc))
        return {"ok": True, "relay": relay}

    @app.get("/api/config")
    async def api_config(request: "Request") -> "Any":
        headers = {}
        if request.args.get("download"):
            headers["Content-Disposition"] = 'attachment; filename="doorline-config.json"'
        return Response(configuration.redacted(station.config),  # type: ignore[arg-type]  # JSON
                        200, headers)

    @app.put("/api/config")
    @_api
    async def api_config_put(request: "Request") -> "Any":
        return await web.put_config(_json_body(request))

    @app.get("/api/events")
    @_api
    async def api_events(request: "Request") -> "Any":
        since = _int_arg(request, "since", None, 0, 2**63)
        limit = _int_arg(request, "limit", EVENTS_DEFAULT_LIMIT, 1, EVENTS_MAX_LIMIT)
        assert limit is not None  # it has a default
        events = station.events(since)
        if since is None:
            return {"events": events[-limit:], "more": False}
        return {"events": events[:limit], "more": len(events) > limit}

    @app.get("/api/events/stream")
    @_api
    async def api_events_stream(request: "Request") -> "Any":
        last = request.headers.get("Last-Event-ID") or request.args.get("since")
        if last is not None and (not last.isdigit() or len(last) > 18):
            return _error(400, "Last-Event-ID / since must be an event id")
        body = web.streams.open(int(last) if last is not None else None)
        if body is None:
            return _error(503, "too many event streams open; try again",
                          {"Retry-After": "5"})
        lift = getattr(request.sock[1], "lift_deadline", None) if request.sock else None
        if lift is not None:
            lift()  # the stream bounds itself (firmware/web/stream.py)
        # microdot writes an async generator body chunk by chunk; its hint names str/bytes only
        return Response(body, 200,  # type: ignore[arg-type]
                        {"Content-Type": "text/event-stream; charset=utf-8",
                         "X-Accel-Buffering": "no"})

    @app.post("/api/sim/button/<role>")
    @_api
    async def api_sim_button(request: "Request", role: str) -> "Any":
        if not station.simulated:
            return _error(404, "not found: button simulation exists on simulated boards only")
        press_ms = _json_body(request, required=False).get("press_ms", 100)
        if isinstance(press_ms, bool) or not isinstance(press_ms, int) \
                or not 1 <= press_ms <= MAX_PRESS_MS:
            return _error(400, f"press_ms must be a whole number from 1 to {MAX_PRESS_MS}")
        try:
            station.press_button(role, press_ms)
        except KeyError:
            return _error(404, f"no button with role {role!r} on this board")
        return {"ok": True}

    @app.post("/api/sim/input/<role>")
    @_api
    async def api_sim_input(request: "Request", role: str) -> "Any":
        if not station.simulated:
            return _error(404, "not found: input simulation exists on simulated boards only")
        state = _json_body(request).get("state")
        if state not in ("open", "closed"):
            return _error(400, 'state must be "open" or "closed"')
        try:
            station.set_input(role, state == "closed")  # a closed contact is active
        except KeyError:
            return _error(404, f"no input with role {role!r} on this board")
        return {"ok": True}

    @app.get("/metrics")
    async def metrics(request: "Request") -> "Any":
        return Response(prometheus_text(station.metrics()), 200, {"Content-Type": METRICS_TYPE})

    board = getattr(station, "board", None)
    if board is not None and getattr(board, "camera", None) is not None:
        from firmware.web import camera  # only stations with a camera load its routes

        camera.add_routes(app, web, station, clock)
    return app


# RFC 9110 §15 (and RFC 6585 §3–5 for 428, 429, 431): the reason phrases of the status codes
# the page and microdot can answer with. A small table of our own, not `http.HTTPStatus`: that
# enum (62 members, ~0.1 MB of objects and code) stayed loaded from the first answer on
# (issue 14, sixth round).
REASONS = {
    100: "Continue", 101: "Switching Protocols",
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information",
    204: "No Content", 205: "Reset Content", 206: "Partial Content",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other",
    304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 409: "Conflict",
    410: "Gone", 411: "Length Required", 412: "Precondition Failed", 413: "Content Too Large",
    414: "URI Too Long", 415: "Unsupported Media Type", 416: "Range Not Satisfiable",
    417: "Expectation Failed", 421: "Misdirected Request", 422: "Unprocessable Content",
    426: "Upgrade Required", 428: "Precondition Required", 429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


def reason_phrase(status: int) -> str:
    """The standard reason phrase of `status` (RFC 9110), "Unknown" for codes it lacks."""
    return REASONS.get(status, "Unknown")


def _error_handler(status: int, text: str) -> "Callable":
    async def handler(request: "Request") -> "Any":
        return _error(status, text)
    return handler


def _needs_code(request: "Request") -> bool:
    return not hosts.is_loopback(_client(request))


def _checked_form(web: "_Web", request: "Request") -> "tuple[Session | None, Any]":
    """(pre-login session, form) when the form's CSRF token matches its session, else
    (None, None)."""
    session = web.session_of(request)
    form = request.form
    if session is None or form is None:
        return None, None
    if not compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
        return None, None
    return session, form


def _log_in(web: "_Web", old_session: "Session", response: "Response") -> "Response":
    web.sessions.drop(old_session.id)
    session = web.sessions.create(authenticated=True)
    return web.set_session_cookie(response, session)


async def start(app: "Microdot", host: str, port: int,
                ssl_context: "ssl.SSLContext | None" = None) -> "asyncio.Server":
    """Bind and start accepting; returns the asyncio.Server (its sockets tell the port)."""
    if ssl_context is not None:
        app.doorline.secure_cookies = True  # type: ignore[attr-defined]  # set by create_app
    # Microdot would wait for a request as long as the client likes and read any number of
    # header lines: limits.py bounds connections, heads and idle time, and gives each
    # connection REQUEST_TIMEOUT for its whole request and response (slowloris).
    Request.max_readline = limits.MAX_REQUEST_LINE + limits.MAX_HEADER_BYTES
    return await limits.start_server(app.handle_request, host, port, ssl_context,
                                     request_timeout=REQUEST_TIMEOUT)


async def serve(app: "Microdot", host: str, port: int,
                ssl_context: "ssl.SSLContext | None" = None) -> None:
    """Serve until cancelled (then the listening socket is closed)."""
    server = await start(app, host, port, ssl_context)
    try:
        await server.serve_forever()
    finally:
        server.close()
