"""tools/install/install.sh into a DESTDIR tree, and `systemd-analyze verify` on the unit."""

import os
import pathlib
import re
import shutil
import stat
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
INSTALL = ROOT / "tools" / "install" / "install.sh"
UNIT = "etc/systemd/system/doorline.service"


def run_installer(destdir, *args, board="rpi4", model_file=None, purge=False, check=True):
    env = {k: v for k, v in os.environ.items() if k not in ("BOARD", "PURGE", "MODEL_FILE")}
    env["DESTDIR"] = str(destdir)
    if board:
        env["BOARD"] = board
    if model_file:
        env["MODEL_FILE"] = str(model_file)
    if purge:
        env["PURGE"] = "1"
    result = subprocess.run([str(INSTALL), *args], env=env, capture_output=True, text=True,
                            timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_destdir_install_lays_out_the_tree_without_root_effects(tmp_path):
    unit_on_host = pathlib.Path("/") / UNIT
    existed_before = unit_on_host.exists()
    result = run_installer(tmp_path)
    assert unit_on_host.exists() == existed_before
    unit = (tmp_path / UNIT).read_text()
    assert ("ExecStart=/opt/doorline/venv/bin/python -S -m firmware --board "
            "/opt/doorline/boards/rpi4.toml --config /etc/doorline/config.toml "
            "--state-dir /var/lib/doorline") in unit
    # `python -S` reads no .pth files: the venv's and the system's site-packages come from
    # PYTHONPATH, the venv's first (issue 14, start-up).
    pythonpath = re.search(r"^Environment=PYTHONPATH=(\S+)$", unit, re.M).group(1).split(":")
    assert re.fullmatch(r"/opt/doorline/venv/lib/python3\.\d+/site-packages", pythonpath[0])
    assert len(pythonpath) > 1 and not any("/opt/doorline" in path for path in pythonpath[1:])
    assert "@" not in unit.replace("@system-service", "")  # every placeholder rendered
    assert (tmp_path / "opt/doorline/boards/rpi4.toml").read_bytes() == \
        (ROOT / "boards/rpi4.toml").read_bytes()
    assert mode(tmp_path / "etc/doorline") == 0o700
    assert mode(tmp_path / "etc/doorline/config.toml") == 0o600
    assert mode(tmp_path / "var/lib/doorline") == 0o750
    # root effects are only announced
    out = result.stdout
    for command in ("apt-get install -y --no-install-recommends python3-venv",
                    "python3-lgpio", "libasound2 ", "alsa-utils", "avahi-daemon",
                    "libspeexdsp1", "libspandsp2",
                    "useradd --system --user-group", "usermod --append --groups gpio\\,audio",
                    "chown -R doorline:doorline /etc/doorline /var/lib/doorline",
                    "-m venv --system-site-packages /opt/doorline/venv",
                    "-m pip install", "systemctl enable doorline.service"):
        assert command in out, command
    # issue 19: nothing to compile for the sound card (hal/libasound.py, ctypes); a compiler
    # only where armhf builds cffi and pylibsrtp (DESTDIR mode knows no architecture)
    install_line = next(line for line in out.splitlines() if "apt-get install" in line)
    assert not {"libasound2-dev", "gcc", "python3-dev"} & set(install_line.split()), install_line
    assert all(line.startswith(("would run: ", "doorline: ")) for line in out.splitlines())
    assert not (tmp_path / "opt/doorline/venv").exists()


def test_seed_config_listens_on_the_lan_and_loads(tmp_path):
    run_installer(tmp_path)
    from firmware import config
    cfg = config.load(str(tmp_path / "etc/doorline/config.toml"))
    assert cfg.sip.listen == "0.0.0.0:5060"
    assert cfg.web.listen == "0.0.0.0:8080"
    assert cfg.web.https is True  # the admin password crosses the LAN


SETUP_LINE = re.compile(r"^doorline: set the admin password there now, with this one-time "
                        r"setup code: (\S+)$", re.M)


def test_install_makes_and_prints_the_setup_code(tmp_path):
    from firmware.web import setupcode
    result = run_installer(tmp_path)
    printed = SETUP_LINE.search(result.stdout)
    assert printed, result.stdout
    code = printed.group(1)
    assert setupcode.is_valid(code) and len(setupcode.normalise(code)) == 10
    assert "https://" in result.stdout and "fingerprint" in result.stdout
    file = tmp_path / "var/lib/doorline/setup-code"
    assert file.read_text().strip() == code
    assert mode(file) == 0o600
    # The firmware takes this code as its own, so the journal shows the same one.
    state = setupcode.SetupCode(str(file.parent))
    assert state.ensure() == code and state.matches(code)
    # Installing again prints the same code; codes differ between installations.
    assert SETUP_LINE.search(run_installer(tmp_path).stdout).group(1) == code
    other = {SETUP_LINE.search(run_installer(tmp_path / f"o{i}").stdout).group(1)
             for i in range(5)}
    assert len(other | {code}) == 6


def test_install_keeps_a_seeded_setup_code_and_drops_it_once_the_password_is_set(tmp_path):
    state = tmp_path / "var/lib/doorline"
    state.mkdir(parents=True)
    (state / "setup-code").write_text("PQRST-23456\n")  # seeded by tools/image/build
    result = run_installer(tmp_path)
    assert SETUP_LINE.search(result.stdout).group(1) == "PQRST-23456"
    (state / "setup-code").write_text("not a code; rm -rf /\n")
    replaced = SETUP_LINE.search(run_installer(tmp_path).stdout).group(1)
    assert replaced != "PQRST-23456" and "rm" not in replaced
    (state / "admin.json").write_text("{}")
    result = run_installer(tmp_path)
    assert not SETUP_LINE.search(result.stdout)
    assert "the admin password is already set" in result.stdout
    assert not (state / "setup-code").exists()


def test_installing_twice_keeps_the_configuration(tmp_path):
    run_installer(tmp_path)
    config = tmp_path / "etc/doorline/config.toml"
    config.write_text('[sip]\nusername = "door-1"\n')
    run_installer(tmp_path, board="rpi5")
    assert config.read_text() == '[sip]\nusername = "door-1"\n'
    assert "--board /opt/doorline/boards/rpi5.toml" in (tmp_path / UNIT).read_text()


@pytest.mark.parametrize("model, board", [
    ("Raspberry Pi Zero 2 W Rev 1.0", "rpi-zero2w"),
    ("Raspberry Pi 3 Model B Plus Rev 1.3", "rpi3"),
    ("Raspberry Pi 4 Model B Rev 1.5", "rpi4"),
    ("Raspberry Pi 5 Model B Rev 1.0", "rpi5"),
])
def test_board_comes_from_the_device_tree_model(tmp_path, model, board):
    model_file = tmp_path / "model"
    model_file.write_bytes(model.encode() + b"\0")  # the kernel's file is NUL-terminated
    run_installer(tmp_path / "root", board=None, model_file=model_file)
    assert f"--board /opt/doorline/boards/{board}.toml" in (tmp_path / "root" / UNIT).read_text()


def test_board_override_wins_over_the_model(tmp_path):
    model_file = tmp_path / "model"
    model_file.write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\0")
    run_installer(tmp_path / "root", board="rpi3", model_file=model_file)
    assert "--board /opt/doorline/boards/rpi3.toml" in (tmp_path / "root" / UNIT).read_text()


def test_unknown_model_and_bad_board_names_are_refused(tmp_path):
    model_file = tmp_path / "model"
    model_file.write_bytes(b"Banana Pi M5\0")
    result = run_installer(tmp_path / "a", board=None, model_file=model_file, check=False)
    assert result.returncode != 0
    assert "unsupported board model 'Banana Pi M5'; set BOARD=" in result.stderr
    for bad in ("../../etc/passwd", "rpi4;touch x", "rpi9"):
        result = run_installer(tmp_path / "b", board=bad, check=False)
        assert result.returncode != 0
        assert "BOARD must be" in result.stderr or "no board file" in result.stderr
        assert not (tmp_path / "b" / UNIT).exists()


def test_uninstall_keeps_the_config_unless_purged(tmp_path):
    run_installer(tmp_path)
    (tmp_path / "var/lib/doorline/events.log").write_text("x")
    result = run_installer(tmp_path, "--uninstall")
    assert "systemctl disable --now doorline.service" in result.stdout
    assert "userdel doorline" in result.stdout
    assert not (tmp_path / UNIT).exists()
    assert not (tmp_path / "var/lib/doorline").exists()
    assert not (tmp_path / "opt/doorline").exists()
    assert (tmp_path / "etc/doorline/config.toml").exists()
    run_installer(tmp_path, "--uninstall", purge=True)
    assert not (tmp_path / "etc/doorline").exists()


def test_make_targets_pass_destdir_and_board(tmp_path):
    subprocess.run(["make", "-s", "install", f"DESTDIR={tmp_path}", "BOARD=rpi-zero2w"],
                   cwd=ROOT, check=True, capture_output=True, timeout=60)
    assert "boards/rpi-zero2w.toml" in (tmp_path / UNIT).read_text()
    subprocess.run(["make", "-s", "uninstall", f"DESTDIR={tmp_path}", "PURGE=1"],
                   cwd=ROOT, check=True, capture_output=True, timeout=60)
    assert list(tmp_path.rglob("*doorline*")) == []


# -- systemd-analyze verify ---------------------------------------------------------------------

def verify_unit(root):
    """`systemd-analyze verify --root=ROOT` on the installed unit; returns its messages.

    With --root, systemd resolves the unit's dependencies and its ExecStart binary inside ROOT,
    so the tree gets the host's stock units (sysinit.target, network-online.target, ...) and a
    stand-in executable where the venv's python will be. Unknown or unparsable directives are
    only warnings (exit status 0), so any output at all counts as a failure."""
    if not (root / "usr/lib/systemd/system").exists():
        shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    python = root / "opt/doorline/venv/bin/python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    result = subprocess.run(["systemd-analyze", "verify", f"--root={root}", str(root / UNIT)],
                            capture_output=True, text=True, timeout=60)
    messages = (result.stdout + result.stderr).strip()
    if result.returncode != 0 and not messages:
        messages = f"exit status {result.returncode}"
    return messages


needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None or
                                   not os.path.isdir("/usr/lib/systemd/system"),
                                   reason="systemd-analyze is not installed")


@needs_systemd
def test_systemd_analyze_verify_passes(tmp_path):
    run_installer(tmp_path)
    assert verify_unit(tmp_path) == ""


@needs_systemd
def test_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt directive and a missing binary are both reported."""
    run_installer(tmp_path)
    unit = tmp_path / UNIT
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictest"))
    assert "Failed to parse protect system value" in verify_unit(tmp_path)
    run_installer(tmp_path)  # restores the unit
    unit.write_text(unit.read_text().replace("/opt/doorline/venv/bin/python",
                                             "/opt/doorline/venv/bin/pythonx"))
    assert "is not executable" in verify_unit(tmp_path)


@pytest.mark.parametrize("section,packages", [
    ("", ""), ("# [camera]\n# kind = \"picamera2\"\n", ""),
    ("[camera]\nkind = \"v4l2\"\ndevice = \"/dev/video0\"\n", "python3-av"),
    ("[camera]\nkind = \"picamera2\"\n", "python3-av python3-picamera2")])
def test_camera_packages_follow_the_board_files_camera(tmp_path, section, packages):
    """Issue 16: a board with a [camera] gets PyAV from apt, a Pi camera module picamera2."""
    board = tmp_path / "board.toml"
    board.write_text((ROOT / "boards/rpi4.toml").read_text().split("\n# A camera")[0] +
                     "\n" + section)
    function = re.search(r"^camera_packages\(\) \{.*?^\}$", INSTALL.read_text(),
                         re.S | re.M).group(0)
    result = subprocess.run(["bash", "-c", function + '\ncamera_packages "$1"', "-",
                             str(board)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == packages.split()
