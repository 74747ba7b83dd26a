"""firmware/web/static/help.json is generated from docs/CONFIG.md by tools/confighelp.py: the
committed file must be what the generator makes now (issue 18: one source for the page's help)."""

import os
import subprocess
import sys

from firmware import config
from tools import confighelp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_committed_help_json_is_what_docs_config_md_gives():
    with open(confighelp.SOURCE, encoding="utf-8") as f:
        expected = confighelp.render(f.read())
    with open(confighelp.TARGET, encoding="utf-8") as f:
        assert f.read() == expected, "help.json is stale: run python tools/confighelp.py"
    check = subprocess.run([sys.executable, "tools/confighelp.py", "--check"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_every_key_of_every_table_has_its_help():
    with open(confighelp.SOURCE, encoding="utf-8") as f:
        help_ = confighelp.generate(f.read())
    missing = []
    for section, table in config.DEFAULTS.items():
        keys = table[0] if isinstance(table, list) and table else table
        if section == "relays":
            keys = config.RELAY_DEFAULTS
        elif section == "schedules":
            keys = config.SCHEDULE_DEFAULTS
        elif section == "webhooks":
            keys = config.WEBHOOK_DEFAULTS
        missing += [f"{section}.{key}" for key in keys if f"{section}.{key}" not in help_]
    assert missing == [], "keys without a row in docs/CONFIG.md"


def test_rows_naming_several_keys_and_other_tables():
    doc = """## `[camera]`
| key | default | meaning |
| --- | --- | --- |
| `width`, `height` | `640`, `480` | picture size; `a|b` stays |
| `username`, `password` | `""` | the **login** |

## Every door: `[[relays]]`, `[time]`
| key | default | meaning |
| --- | --- | --- |
| `[time] zone` | `"UTC"` | the zone |
| `[[relays]] role` | – | a role |
"""
    assert confighelp.generate(doc) == {
        "camera.width": {"default": "640", "help": "picture size; a|b stays"},
        "camera.height": {"default": "480", "help": "picture size; a|b stays"},
        "camera.username": {"default": '""', "help": "the login"},
        "camera.password": {"default": '""', "help": "the login"},
        "time.zone": {"default": '"UTC"', "help": "the zone"},
        "relays.role": {"default": "–", "help": "a role"},
    }


def test_stale_file_is_detected(tmp_path, monkeypatch):
    stale = tmp_path / "help.json"
    stale.write_text("{}\n")
    monkeypatch.setattr(confighelp, "TARGET", str(stale))
    assert confighelp.main(["--check"]) == 1
    assert confighelp.main([]) == 0
    assert confighelp.main(["--check"]) == 0
