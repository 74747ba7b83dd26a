"""Each setting's meaning and default, from docs/CONFIG.md, for the web page (issue 18).

    python tools/confighelp.py            # writes firmware/web/static/help.json
    python tools/confighelp.py --check    # exit 1 when the committed file is stale

docs/CONFIG.md is the one source: every `## ` heading naming a table (`[sip]`, `[[buttons]]`)
starts a section, and each row of its `| key | default | meaning |` table becomes
`"<section>.<key>": {"default": ..., "help": ...}`. A row may name several keys
("`username`, `password`"; their defaults split the same way when the counts match: "`640`,
`480`"), or its own table ("`[time] zone`"). Markdown's backticks and bold marks are dropped;
the text is otherwise as written. The page fetches the JSON from /static/help.json.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "docs", "CONFIG.md")
TARGET = os.path.join(ROOT, "firmware", "web", "static", "help.json")


def _plain(text: str) -> str:
    return " ".join(text.replace("`", "").replace("**", "").split())


def _table_name(text: str) -> str | None:
    """The first `[name]` or `[[name]]` in `text`, or None."""
    start = text.find("`[")
    if start < 0:
        return None
    end = text.find("]", start)
    name = text[start + 2:end].strip("[]") if end > 0 else ""
    return name or None


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row; a `|` inside backticks stays in its cell."""
    cells: list[str] = []
    current: list[str] = []
    quoted = False
    for char in line.strip().strip("|"):
        if char == "`":
            quoted = not quoted
        if char == "|" and not quoted:
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    cells.append("".join(current).strip())
    return cells


def _keys(cell: str, section: str) -> list[tuple[str, str]]:
    """(section, key) pairs a key cell names: "`a`, `b`" or "`[time] zone`"."""
    out = []
    for part in cell.split(","):
        part = part.strip().strip("`").strip()
        table = section
        if part.startswith("["):
            end = part.rfind("]")
            table, part = part[:end + 1].strip("[]"), part[end + 1:].strip()
        if part and table:
            out.append((table, part))
    return out


def generate(markdown: str) -> dict[str, dict[str, str]]:
    """{"section.key": {"default", "help"}} for every key row of the document."""
    help_: dict[str, dict[str, str]] = {}
    section: str | None = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            section = _table_name(line)
            continue
        if section is None or not line.startswith("|"):
            continue
        cells = _cells(line)
        if len(cells) != 3 or cells[0] in ("key", "") or set(cells[0]) <= set("- "):
            continue
        keys = _keys(cells[0], section)
        defaults = [d.strip() for d in cells[1].split(",")]
        for i, (table, key) in enumerate(keys):
            default = defaults[i] if len(defaults) == len(keys) else cells[1]
            help_[f"{table}.{key}"] = {"default": _plain(default), "help": _plain(cells[2])}
    return help_


def render(markdown: str) -> str:
    """The file's text: compact JSON, keys sorted, one trailing newline."""
    return json.dumps(generate(markdown), sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")) + "\n"


def main(argv: list[str]) -> int:
    with open(SOURCE, encoding="utf-8") as f:
        text = render(f.read())
    if "--check" in argv:
        with open(TARGET, encoding="utf-8") as f:
            if f.read() != text:
                print("firmware/web/static/help.json is stale: run python tools/confighelp.py",
                      file=sys.stderr)
                return 1
        return 0
    with open(TARGET, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote %d bytes, %d settings" % (len(text.encode()), text.count('"help"')))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
