"""The snapshot history on disk: `<state dir>/snapshots/<id>.jpg` with `<id>.json` beside it
({"id", "time", "event"}), at most `limit` of them (the oldest deleted first), each file written
atomically (a temp file, fsync, rename), read back at start so the history survives restarts.

Ids sort by time: `YYYYMMDD-HHMMSS-mmm` in UTC (a suffix `-NNNN` when two fall in one millisecond);
`is_id(text)` tells whether a string can be one (the API serves nothing else).
"""

import json
import logging
import os
import threading
import time
from typing import Any

log = logging.getLogger("doorline.camera")

SUFFIX_JPEG, SUFFIX_META = ".jpg", ".json"


def is_id(text: str) -> bool:
    parts = text.split("-")
    if len(parts) not in (3, 4) or not all(p.isascii() and p.isdigit() for p in parts):
        return False
    return len(parts[0]) == 8 and len(parts[1]) == 6 and len(parts[2]) == 3 and \
        (len(parts) == 3 or len(parts[3]) == 4)


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class SnapshotStore:
    """Thread-safe: `add` runs on a worker thread, the rest on the event loop."""

    def __init__(self, directory: str, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self._lock = threading.Lock()
        self._items: list[dict[str, Any]] = []  # oldest first
        self._last_id = ""  # the last id handed out: ids only grow
        self._load()

    def _load(self) -> None:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("snapshots: cannot read %s: %s", self.directory, exc.strerror)
            return
        items: list[dict[str, Any]] = []
        for name in names:
            path = os.path.join(self.directory, name)
            if ".tmp." in name:  # a write killed half-way: the real files are intact
                _unlink(path)
                continue
            ident, suffix = os.path.splitext(name)
            if suffix != SUFFIX_META or not is_id(ident):
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(meta, dict) and meta.get("id") == ident and \
                    os.path.exists(os.path.join(self.directory, ident + SUFFIX_JPEG)):
                items.append({"id": ident, "time": meta.get("time"), "event": meta.get("event")})
        items.sort(key=lambda item: str(item["id"]))
        self._items = items
        self._prune()

    def new_id(self, wall: float) -> str:
        base = time.strftime("%Y%m%d-%H%M%S", time.gmtime(wall)) + "-%03d" % (
            int(wall * 1000) % 1000)
        with self._lock:
            last = self._last_id or (self._items[-1]["id"] if self._items else "")
            ident = base
            if ident <= last:  # the same millisecond (or the clock went back): count on
                head, _, suffix = last.rpartition("-") if last.count("-") == 3 else (last, "", "0")
                ident = "%s-%04d" % (head, int(suffix) + 1)
            self._last_id = ident
            return ident

    def add(self, ident: str, jpeg: bytes, wall: float, event: "dict[str, Any]") -> None:
        """Write one snapshot (on a worker thread); the oldest beyond `limit` are deleted."""
        meta = {"id": ident, "time": round(wall, 3), "event": event}
        try:
            os.makedirs(self.directory, exist_ok=True)
            _write_atomic(os.path.join(self.directory, ident + SUFFIX_JPEG), jpeg)
            _write_atomic(os.path.join(self.directory, ident + SUFFIX_META),
                          json.dumps(meta).encode())
        except OSError as exc:
            log.error("snapshot %s not saved: %s", ident, exc.strerror)
            return
        with self._lock:
            self._items.append(meta)
            self._items.sort(key=lambda item: item["id"])
            self._prune()

    def add_failed(self, ident: str) -> None:
        """The picture for `ident` could not be taken (its id is not reused)."""

    def _prune(self) -> None:
        while len(self._items) > self.limit:
            old = self._items.pop(0)
            for suffix in (SUFFIX_META, SUFFIX_JPEG):
                _unlink(os.path.join(self.directory, old["id"] + suffix))

    def set_limit(self, limit: int) -> None:
        with self._lock:
            self.limit = limit
            self._prune()

    def list(self) -> "list[dict[str, Any]]":
        """Newest first."""
        with self._lock:
            return [dict(item) for item in reversed(self._items)]

    def path(self, ident: str) -> "str | None":
        """The JPEG's path when `ident` is in the history, else None."""
        if not is_id(ident):
            return None
        with self._lock:
            if not any(item["id"] == ident for item in self._items):
                return None
        return os.path.join(self.directory, ident + SUFFIX_JPEG)

    def read(self, ident: str) -> "bytes | None":
        path = self.path(ident)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def latest(self) -> "dict[str, Any] | None":
        """The newest snapshot's {"id", "time", "event", "path"} (None when there is none)."""
        with self._lock:
            if not self._items:
                return None
            item = dict(self._items[-1])
        item["path"] = os.path.join(self.directory, item["id"] + SUFFIX_JPEG)
        return item


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
