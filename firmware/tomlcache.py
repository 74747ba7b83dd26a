"""Parsed TOML files, remembered from one start to the next (issue 14, sixth round: memory).

Only the start reads TOML (the configuration file and the board file), but `tomllib` and the
`datetime` module it imports then stay loaded for as long as the station runs: ~0.5 MB of RSS
on the bench machine, paid by every station. `read(path, cache_dir)` returns a file's parsed
document; with a `cache_dir` (the station's state directory) it keeps the documents it parsed
in `cache_dir/parsed-toml.cache`, each with the identity of the file it came from (device,
inode, size, modification and change times in ns). A later start whose file still has that
identity takes the document from there and never imports tomllib: a restart, a reboot, a
service restart with the files unchanged. Any write to a file changes its change time, so a
changed file is parsed again (and remembered instead), whatever its modification time says.

What this is not: a cache of the validated configuration. The callers validate the document
every time exactly as before (firmware/config.py `validate`, hal/board.py `parse_board`), so a
firmware update that changes the rules applies at once; only the TOML parser is skipped.

Choices:
- marshal, as the start plan (runtime/faststart.py): already loaded, exact for what TOML gives
  except dates and times, which marshal cannot hold: a document with a TOML date or time is
  parsed at every start (none of ours has one).
- The file is written 0600 through a temporary file and a rename, only when its content
  changed (an SD card is not written at every start). It holds what the configuration file
  holds, the SIP password included, as the start plan does; it lives in the state directory
  (0750, the service's user). At most `MAX_FILES` documents; an unreadable, foreign or
  corrupt cache is ignored (parsed again) and replaced.
- Errors are the parser's: `tomllib.TOMLDecodeError` (a ValueError) for bad TOML,
  `UnicodeDecodeError` (also a ValueError) for bytes that are not UTF-8, OSError for a file
  that cannot be read.

Public API: `CACHE_NAME`, `MAX_FILES`, `read(path, cache_dir=None) -> dict`,
`identity(path) -> list`.
"""

import marshal
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CACHE_NAME = "parsed-toml.cache"
CACHE_VERSION = 1
MAX_FILES = 4  # the configuration and the board file, with room for a renamed one


def identity(path: str) -> "list[Any]":
    st = os.stat(path)
    return [os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
            st.st_ctime_ns]


def _load_cache(cache_path: str) -> "dict[str, Any]":
    try:
        with open(cache_path, "rb") as f:
            cache = marshal.loads(f.read())
    except (OSError, ValueError, TypeError, EOFError):
        return {}
    if not isinstance(cache, dict) or cache.get("version") != CACHE_VERSION or \
            not isinstance(cache.get("files"), dict):
        return {}
    files: dict[str, Any] = cache["files"]
    return files


def _marshallable(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _marshallable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_marshallable(v) for v in value)
    return isinstance(value, (str, int, float, bool))


def _store(cache_path: str, files: "dict[str, Any]") -> None:
    data = marshal.dumps({"version": CACHE_VERSION, "files": files})
    try:
        with open(cache_path, "rb") as f:
            if f.read() == data:
                return
    except OSError:
        pass
    tmp = f"{cache_path}.tmp.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, cache_path)
    except OSError:  # a read-only state directory: parse again next time
        try:
            os.unlink(tmp)
        except OSError:
            pass


def read(path: str, cache_dir: str | None = None) -> "dict[str, Any]":
    """The parsed document of the TOML file at `path` (see the module's docstring)."""
    key = identity(path)  # before reading: a write after this changes the change time
    cache_path = os.path.join(cache_dir, CACHE_NAME) if cache_dir else ""
    files = _load_cache(cache_path) if cache_path else {}
    entry = files.get(key[0])
    if isinstance(entry, list) and len(entry) == 2 and entry[0] == key and \
            isinstance(entry[1], dict):
        document: dict[str, Any] = entry[1]
        return document
    import tomllib  # only when the file is new or changed (or no cache is kept)

    with open(path, "rb") as f:
        document = tomllib.load(f)
    if cache_path and _marshallable(document):
        files[key[0]] = [key, document]
        while len(files) > MAX_FILES:
            del files[next(iter(files))]  # the oldest entry first (insertion order)
        _store(cache_path, files)
    return document
