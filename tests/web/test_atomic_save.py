"""config.save_atomic under SIGKILL: the file is always one complete, valid version.

A child process saves several configurations of different sizes in a loop; we kill it at random
moments and check that what is on disk parses and equals one of the versions it was writing.
"""

import os
import random
import signal
import subprocess
import sys
import time
import tomllib

from firmware import config as configuration
from tests.conftest import ROOT

KILLS = 20
VERSIONS = 4


def version(i):
    """Version i: distinct expiry and an allow list long enough that a write takes a while."""
    doc = configuration.defaults()
    doc["sip"]["expires"] = 100 + i
    doc["answer"]["allow"] = [f"sip:user{j}@127.0.0.1" for j in range(150 * (i + 1))]
    return configuration.validate(doc)


CHILD = """
import sys
from firmware import config
from tests.web.test_atomic_save import VERSIONS, version
path = sys.argv[1]
versions = [version(i) for i in range(VERSIONS)]
config.save_atomic(path, versions[0])
print("ready", flush=True)
i = 0
while True:
    i += 1
    config.save_atomic(path, versions[i % VERSIONS])
"""


def test_save_atomic_survives_sigkill(tmp_path):
    path = str(tmp_path / "doorline.toml")
    expected = [version(i) for i in range(VERSIONS)]
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seen = set()
    for _ in range(KILLS):
        child = subprocess.Popen([sys.executable, "-c", CHILD, path], cwd=str(ROOT), env=env,
                                 stdout=subprocess.PIPE)
        try:
            assert child.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.0, 0.05))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            child.stdout.close()
        with open(path, "rb") as f:
            on_disk = configuration.validate(tomllib.load(f))
        assert on_disk in expected
        seen.add(expected.index(on_disk))
        if os.path.exists(path + ".prev"):
            with open(path + ".prev", "rb") as f:
                assert configuration.validate(tomllib.load(f)) in expected
    assert len(seen) > 1, "the kills should land at different points of the save loop"
