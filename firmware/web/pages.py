"""The server-rendered pages: first-boot setup, login, and the main page shell.

The setup and login pages are plain HTML forms (they work without JavaScript) carrying the CSRF
token of the pre-login session. The main page is `static/index.html` with the session's CSRF
token and the asset version filled in; everything else on it is done by `static/app.js`.
No inline script or style anywhere, so the Content-Security-Policy can forbid both.
"""

import os

from firmware.compat import hash_constructor

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_TYPES = {
    "app.js": "application/javascript; charset=utf-8",
    "forms.js": "application/javascript; charset=utf-8",  # loaded by app.js when needed
    "settings.js": "application/javascript; charset=utf-8",
    "camera.js": "application/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",  # also served as /favicon.ico
    "help.json": "application/json",  # each setting's meaning and default (tools/confighelp.py)
}


_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"})


def _escape(text: str) -> str:
    """`html.escape(text)` without the `html` package (its entity table is loaded with it)."""
    return text.translate(_ESCAPES)


def load_static() -> tuple[dict[str, bytes], str, str]:
    """The static files as {name: bytes}, the index template, and a version for cache busting."""
    files = {}
    for name in STATIC_TYPES:
        with open(os.path.join(STATIC_DIR, name), "rb") as f:
            files[name] = f.read()
        if name.endswith(".js"):
            files[name] = compact_js(files[name])
    with open(os.path.join(STATIC_DIR, "index.html"), encoding="utf-8") as f:
        index = f.read()
    return files, index, version_of(files)


def gzipped(data: bytes) -> bytes:
    """`data` gzip-compressed, the same bytes every time (no timestamp)."""
    import gzip  # the first compressed answer loads it, not the start (issue 14)

    return gzip.compress(data, compresslevel=9, mtime=0)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip (RFC 9110 §12.5.3; `gzip;q=0` refuses)."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            quality = params.strip().lower()
            return not (quality.startswith("q=") and quality[2:].strip().strip("0.") == "")
    return False


def version_of(files: dict[str, bytes]) -> str:
    """The cache-busting version of the static files (`?v=`): changes with any of them."""
    sha256 = hash_constructor("sha256")  # CPython's built-in: no libcrypto (issue 14)
    assert sha256 is not None
    return sha256(b"".join(files[n] for n in sorted(files))).hexdigest()[:12]


def compact_js(source: bytes) -> bytes:
    """The page's scripts without indentation and whole-line comments (docs/PAGE.md: the first
    load stays under 60 KB). Line breaks stay, so automatic semicolons and line comments after
    code are unaffected; the scripts have no multi-line strings or template literals."""
    lines = (line.strip() for line in source.split(b"\n"))
    return b"\n".join(line for line in lines if line and not line.startswith(b"//")) + b"\n"


def index_page(template: str, csrf: str, version: str) -> str:
    return template.replace("{{csrf}}", _escape(csrf)).replace("{{v}}", version)


def _shell(title: str, version: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_escape(title)} · Doorline</title>
<link rel="icon" href="/static/icon.svg?v={version}" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css?v={version}"></head>
<body><main class="narrow"><h1>Doorline</h1>{body}</main></body></html>
"""


def _message(error: str | None) -> str:
    if not error:
        return ""
    return f'<p class="alert" role="alert" id="form-error">{_escape(error)}</p>'


SETUP_CODE_WHERE = (
    "The setup code was made when the station first started. Find it in the station's log "
    "(journalctl -u doorline, the line that says \"setup code\"), in the output of make "
    "install, in the file next to the image made by tools/image/build "
    "(IMAGE.setup-code.txt), or in the file setup-code in the state directory "
    "(/var/lib/doorline on a Pi). On the station itself (localhost) no code is needed.")
CERTIFICATE_HELP = (
    "Over HTTPS your browser warns once that it does not know the certificate: the station "
    "made it itself on first start. Before you accept it, check that the SHA-256 fingerprint "
    "the browser shows matches the one in the station's log (journalctl -u doorline, the line "
    "\"web certificate SHA-256\"). To avoid the warning for good, replace web-cert.pem and "
    "web-key.pem in the state directory (/var/lib/doorline) with a certificate and key from "
    "your own CA and restart (docs/INSTALL.md).")


def setup_page(csrf: str, version: str, error: str | None = None, need_code: bool = False) -> str:
    described = ' aria-describedby="form-error"' if error else ""
    code_field = ""
    if need_code:
        code_field = f"""<label for="setup_code">Setup code</label>
<input id="setup_code" name="setup_code" type="text" maxlength="64" required
 autocomplete="one-time-code" autocapitalize="characters" spellcheck="false"
 aria-describedby="setup-code-help{' form-error' if error else ''}">
<p class="muted" id="setup-code-help">{_escape(SETUP_CODE_WHERE)}</p>
"""
    body = f"""<h2>Set the admin password</h2>
<p>This door station has no password yet. Choose one to protect its settings and the door:
at least 10 characters, not a common or repetitive password.</p>
{_message(error)}
<form method="post" action="/setup">
<input type="hidden" name="csrf" value="{_escape(csrf)}">
<input type="hidden" name="username" value="admin" autocomplete="username">
{code_field}<label for="password">New password</label>
<input id="password" name="password" type="password" minlength="10" maxlength="256" required
 autocomplete="new-password"{described} autofocus>
<label for="confirm">Repeat the password</label>
<input id="confirm" name="confirm" type="password" minlength="10" maxlength="256" required
 autocomplete="new-password">
<button type="submit">Set password</button>
</form>
<p class="muted">{_escape(CERTIFICATE_HELP)}</p>"""
    return _shell("First start", version, body)


def login_page(csrf: str, version: str, error: str | None = None) -> str:
    described = ' aria-describedby="form-error"' if error else ""
    body = f"""<h2>Log in</h2>
{_message(error)}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{_escape(csrf)}">
<input type="hidden" name="username" value="admin" autocomplete="username">
<label for="password">Admin password</label>
<input id="password" name="password" type="password" maxlength="256" required
 autocomplete="current-password"{described} autofocus>
<button type="submit">Log in</button>
</form>"""
    return _shell("Log in", version, body)


def message_page(title: str, text: str, version: str) -> str:
    body = f'<h2>{_escape(title)}</h2><p>{_escape(text)}</p><p><a href="/">Back</a></p>'
    return _shell(title, version, body)
