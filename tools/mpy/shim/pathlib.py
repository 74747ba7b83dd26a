"""Stand-in for pathlib under MicroPython (test-only): the little of `Path` that the portable
core's tests use to read the shared conformance vectors (`/`, name, parent, is_file, is_dir,
exists, read_bytes, read_text, open, iterdir, glob of one `*` pattern). POSIX paths only."""

import os

_DIRECTORY = 0x4000  # S_IFDIR in os.stat()[0]


class Path:
    def __init__(self, *parts):
        self._path = "/".join(str(part) for part in parts).replace("//", "/") or "."

    def __truediv__(self, other):
        return Path(self._path, other)

    def __str__(self):
        return self._path

    def __repr__(self):
        return "Path(" + repr(self._path) + ")"

    def __eq__(self, other):
        return isinstance(other, Path) and self._path == other._path

    def __lt__(self, other):
        return self._path < other._path

    def __hash__(self):
        return hash(self._path)

    @property
    def name(self):
        return self._path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def suffix(self):
        name = self.name
        return name[name.rfind("."):] if "." in name[1:] else ""

    @property
    def parent(self):
        head = self._path.rstrip("/").rsplit("/", 1)
        return Path(head[0] or "/") if len(head) == 2 else Path(".")

    def resolve(self):
        return self if self._path.startswith("/") else Path(os.getcwd(), self._path)

    def _mode(self):
        try:
            return os.stat(self._path)[0]
        except OSError:
            return None

    def exists(self):
        return self._mode() is not None

    def is_dir(self):
        mode = self._mode()
        return mode is not None and bool(mode & _DIRECTORY)

    def is_file(self):
        mode = self._mode()
        return mode is not None and not mode & _DIRECTORY

    def open(self, mode="r", encoding=None, newline=None):
        return open(self._path, mode)

    def read_bytes(self):
        with open(self._path, "rb") as stream:
            return stream.read()

    def read_text(self, encoding="utf-8"):
        with open(self._path) as stream:
            return stream.read()

    def iterdir(self):
        return [self / name for name in sorted(os.listdir(self._path))]

    def glob(self, pattern):
        prefix, star, suffix = pattern.partition("*")
        if not star:
            return [self / pattern] if (self / pattern).exists() else []
        return [path for path in self.iterdir()
                if path.name.startswith(prefix) and path.name.endswith(suffix)]
