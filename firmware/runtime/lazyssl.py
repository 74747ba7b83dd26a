"""asyncio without the ssl module until something needs TLS (issue 14: start-up and memory).

`import asyncio` imports `ssl` (asyncio.base_events, selector_events and sslproto each try it,
and fall back to `ssl = None` when the import fails). On the bench machine that is about 8 ms
of every start and 2.2 MB of RSS beyond the libcrypto that hashlib loads anyway, paid by every
station, although only `transport = "tls"`, `[web] https` and a TLS CA file check use TLS.

`from firmware.runtime.lazyssl import asyncio` (the entry point does it before anything else
imports asyncio) imports asyncio while `import ssl` fails, then puts a finder in front of
`sys.meta_path` that waits for the first `import ssl` anywhere in the process (our code, the
standard library, a third-party library): it loads the real module and hands it to the
asyncio modules that took `ssl = None` (and re-runs asyncio.sslproto, whose module-level
names depend on ssl), then removes itself. Until then `ssl` is not in `sys.modules`.

When asyncio (or ssl) is already imported, nothing changes: tests that import the runtime
directly get the usual asyncio.
"""

import sys

_deferring = "asyncio" not in sys.modules and "ssl" not in sys.modules
if _deferring:
    sys.modules["ssl"] = None  # type: ignore[assignment]  # `import ssl` raises ImportError
    try:
        import asyncio
    finally:
        del sys.modules["ssl"]
else:
    import asyncio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

__all__ = ["asyncio", "deferred"]

# The asyncio modules that fall back to `ssl = None` (CPython 3.11-3.13).
ASYNCIO_SSL_USERS = ("asyncio.base_events", "asyncio.selector_events", "asyncio.sslproto")


def deferred() -> bool:
    """True while ssl is not loaded and asyncio waits for it."""
    return any(finder is _SslFinder for finder in sys.meta_path)


def _give_asyncio(ssl_module: "ModuleType") -> None:
    import importlib

    for name in ASYNCIO_SSL_USERS:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "ssl", ssl_module) is None:
            module.ssl = ssl_module  # type: ignore[attr-defined]
    sslproto = sys.modules.get("asyncio.sslproto")
    if sslproto is not None and not hasattr(sslproto, "SSLAgainErrors"):
        importlib.reload(sslproto)  # its module-level names are made only when ssl exists


class _Loader:
    """The real loader of `ssl`; once it has run, asyncio gets the module."""

    def __init__(self, loader: "Any") -> None:
        self.loader = loader

    def create_module(self, spec: "ModuleSpec") -> "ModuleType | None":
        module: ModuleType | None = self.loader.create_module(spec)
        return module

    def exec_module(self, module: "ModuleType") -> None:
        self.loader.exec_module(module)
        _give_asyncio(module)

    def __getattr__(self, name: str) -> "Any":
        return getattr(self.loader, name)


class _SslFinder:
    """Finds nothing but `ssl`, through the normal path finder, and wraps its loader."""

    @classmethod
    def find_spec(cls, name: str, path: "Any" = None,
                  target: "Any" = None) -> "ModuleSpec | None":
        if name != "ssl":
            return None
        from importlib.machinery import PathFinder

        sys.meta_path[:] = [finder for finder in sys.meta_path if finder is not cls]
        spec = PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)  # type: ignore[assignment]  # duck-typed
        return spec


if _deferring:
    sys.meta_path.insert(0, _SslFinder)
