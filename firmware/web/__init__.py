"""The local web page and JSON API (docs/API.md): `create_app(station, config_path, state_dir)`
builds the microdot app, `await serve(app, host, port, ssl_context=None)` runs it, and
`certs.server_ssl_context(state_dir)` gives the context for `[web] https = true`."""

from firmware.web.app import create_app, serve, start

__all__ = ["create_app", "serve", "start"]
