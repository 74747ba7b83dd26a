"""firmware/tomlcache.py (issue 14, sixth round): an unchanged TOML file's parsed document is
taken from the state directory without the TOML parser; any change parses it again."""

import json
import os
import stat
import subprocess
import sys
import time

import pytest

from firmware import config as configuration
from firmware import tomlcache
from tests.conftest import ROOT


def write(path, text):
    path.write_text(text, encoding="utf-8")


def test_a_parsed_file_is_remembered_0600_and_read_back_without_tomllib(tmp_path):
    doc = tmp_path / "doc.toml"
    write(doc, 'a = 1\n[t]\nb = "x"\nc = [1.5, true]\n')
    state = tmp_path / "state"
    state.mkdir()
    assert tomlcache.read(str(doc), str(state)) == {"a": 1, "t": {"b": "x", "c": [1.5, True]}}
    cache = state / tomlcache.CACHE_NAME
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # a fresh interpreter gets the same document from the cache and never imports tomllib
    probe = ("import sys, json\nfrom firmware import tomlcache\n"
             f"d = tomlcache.read({str(doc)!r}, {str(state)!r})\n"
             "print(json.dumps(d, sort_keys=True))\n"
             "print('tomllib' in sys.modules, 'datetime' in sys.modules)")
    done = subprocess.run([sys.executable, "-S", "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    document, loaded = done.stdout.splitlines()
    assert json.loads(document) == {"a": 1, "t": {"b": "x", "c": [1.5, True]}}
    assert loaded == "False False"


def test_any_change_of_the_file_parses_it_again(tmp_path):
    doc = tmp_path / "doc.toml"
    write(doc, "a = 1\n")
    assert tomlcache.read(str(doc), str(tmp_path)) == {"a": 1}
    before = doc.stat()
    write(doc, "a = 2\n")  # same size; the modification time put back as it was
    os.utime(doc, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert tomlcache.read(str(doc), str(tmp_path)) == {"a": 2}  # the change time moved
    replacement = tmp_path / "new.toml"
    write(replacement, "a = 3\n")
    os.replace(replacement, doc)  # as save_atomic writes it: a new inode
    assert tomlcache.read(str(doc), str(tmp_path)) == {"a": 3}


def test_a_corrupt_or_foreign_cache_is_ignored_and_replaced(tmp_path):
    doc = tmp_path / "doc.toml"
    write(doc, "a = 1\n")
    cache = tmp_path / tomlcache.CACHE_NAME
    for junk in (b"", b"\x00garbage", b"N"):  # b"N": marshal's None
        cache.write_bytes(junk)
        assert tomlcache.read(str(doc), str(tmp_path)) == {"a": 1}
    assert tomlcache.read(str(doc), str(tmp_path)) == {"a": 1}
    assert len(cache.read_bytes()) > 10  # rewritten with the document


def test_bad_toml_is_a_value_error_and_nothing_is_remembered(tmp_path):
    doc = tmp_path / "doc.toml"
    write(doc, "a = = 1\n")
    with pytest.raises(ValueError):
        tomlcache.read(str(doc), str(tmp_path))
    doc.write_bytes(b"a = '\xff'\n")
    with pytest.raises(ValueError):
        tomlcache.read(str(doc), str(tmp_path))
    assert not (tmp_path / tomlcache.CACHE_NAME).exists()


def test_dates_are_not_cached_and_the_number_of_files_is_bounded(tmp_path):
    dated = tmp_path / "dated.toml"
    write(dated, "when = 2026-12-05\n")
    first = tomlcache.read(str(dated), str(tmp_path))
    assert str(first["when"]) == "2026-12-05"
    assert not (tmp_path / tomlcache.CACHE_NAME).exists()  # marshal cannot hold a date
    for n in range(tomlcache.MAX_FILES + 3):
        path = tmp_path / f"f{n}.toml"
        write(path, f"n = {n}\n")
        assert tomlcache.read(str(path), str(tmp_path)) == {"n": n}
    files = tomlcache._load_cache(str(tmp_path / tomlcache.CACHE_NAME))
    assert len(files) == tomlcache.MAX_FILES
    assert str(tmp_path / f"f{tomlcache.MAX_FILES + 2}.toml") in files  # the newest kept


def test_config_load_takes_the_cache_and_still_validates(tmp_path):
    path = tmp_path / "doorline.toml"
    write(path, '[sip]\nusername = "door"\n')
    state = tmp_path / "state"
    state.mkdir()
    assert configuration.load(str(path), cache_dir=str(state)).sip.username == "door"
    assert (state / tomlcache.CACHE_NAME).exists()
    assert configuration.load(str(path), cache_dir=str(state)).sip.username == "door"
    time.sleep(0.01)
    write(path, '[sip]\nusername = 5\n')  # invalid now: validation runs on every load
    with pytest.raises(configuration.ConfigError):
        configuration.load(str(path), cache_dir=str(state))
    write(path, "[sip\n")
    with pytest.raises(configuration.ConfigError, match="not valid TOML"):
        configuration.load(str(path), cache_dir=str(state))
