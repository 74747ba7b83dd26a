"""ARM installs under emulation (issue 19): `make test-arm`, not part of `make test`.

For each of arm64 and armhf (32-bit, as on many Pi Zero 2 W and Pi 3 installs) on Debian
Bookworm and Trixie (the bases of Raspberry Pi OS), in a minimal Debian root file system built by
tools/arm/rootfs (`debootstrap --foreign`, qemu-user-static through binfmt_misc; cached outside
the repository, each run works on a fresh copy):

1. the image builder's first-boot path (tools/image/build's payload, the part that needs no booted
   Pi): Bookworm runs its firstrun.sh, Trixie the cloud-init runcmd without the installer line;
   the source lands in /opt/doorline/src, the image's setup code in /var/lib/doorline (0600) and
   off the boot partition, doorline-firstboot.service is enabled (Bookworm);
2. `make install BOARD=rpi4` from that source, as root, exactly as on a Pi: apt, the venv, pip
   (building from source what has no wheel: the test reports which packages were built), the
   unit enabled but not started (systemd is not running in a chroot). The installer must keep
   the image's setup code;
3. the installed unit's ExecStart command line, as the service user, with a test board file (a Pi
   board: gpiozero's mock pins, the ALSA `file` plugin as sound card at 48 kHz, so libasound
   through ctypes and the C rate conversion run too) and a test config: registers with Kamailio on
   the host's loopback (a chroot shares the host's network), baresip calls it through Kamailio
   with mandatory SRTP (SDES), and audio must flow both ways: the station's 1 kHz microphone in
   baresip's recording, baresip's 440 Hz in what the station played to its "speaker".

Figures (install time, what was built from source, Python version, the tones heard) are printed
and written to $DOORLINE_ARM_CACHE/results/<suite>-<arch>.json. Everything emulated runs under
`nice -n 19 ionice -c3` (the Makefile target sets it for the whole run). Needs root, debootstrap,
qemu-user-static, binfmt-support and network access to Debian's archive and PyPI. Runs only with
DOORLINE_ARM=1 (set by `make test-arm`); TARGETS (e.g. "bookworm-arm64") picks cases with -k.
"""

import importlib.machinery
import importlib.util
import io
import json
import os
import pathlib
import platform
import re
import shlex
import shutil
import subprocess
import tarfile
import time
import types

import pytest

from tests.conftest import ROOT
from tests.hal.alsa_card import call_both_ways, write_card
from tests.integration.helpers import Firmware, station_config
from tests.peers.fixtures import FLAT1_USER

pytestmark = [pytest.mark.peers, pytest.mark.arm]

if os.environ.get("DOORLINE_ARM") != "1":
    pytest.skip("ARM installs under emulation run with `make test-arm` (DOORLINE_ARM=1)",
                allow_module_level=True)

CACHE = pathlib.Path(os.environ.get("DOORLINE_ARM_CACHE") or pathlib.Path(
    os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "doorline-arm")
ROOTFS = ROOT / "tools" / "arm" / "rootfs"
LOW_PRIORITY = ["nice", "-n", "19", "ionice", "-c3"]
INSTALL_TIMEOUT_S = 3 * 3600  # armhf builds cffi and pylibsrtp from source under emulation
MIC_HZ, PHONE_HZ = 1000, 440
ALSA_RATE = 48000
TALK_S = 6.0
WORK = "/var/lib/doorline-test"  # inside the chroot
ENV = ["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
       "LANG=C.UTF-8", "HOME=/root", "DEBIAN_FRONTEND=noninteractive"]


CASES = [pytest.param("bookworm", "arm64", id="bookworm-arm64"),
         pytest.param("bookworm", "armhf", id="bookworm-armhf"),
         pytest.param("trixie", "arm64", id="trixie-arm64"),
         pytest.param("trixie", "armhf", id="trixie-armhf")]


# -- the chroot ---------------------------------------------------------------------------------

def _mounted_under(path):
    prefix = os.path.realpath(path) + "/"
    with open("/proc/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _unmount_all(path):
    for point in _mounted_under(path):
        if subprocess.run(["umount", point]).returncode != 0:
            subprocess.run(["umount", "-l", point], check=True)


def _remove_tree(path):
    """rm -rf of an old run copy, never through a bind mount of the host's /dev."""
    if path.exists():
        _unmount_all(path)
        assert not _mounted_under(path), f"still mounted under {path}"
        shutil.rmtree(path)


class Chroot:
    def __init__(self, root, apt_cache):
        self.root = root
        self.apt_cache = apt_cache

    def __enter__(self):
        binds = [("/dev", "dev"), ("/dev/pts", "dev/pts"),
                 (os.fspath(self.apt_cache), "var/cache/apt/archives")]
        subprocess.run(["mount", "-t", "proc", "proc", os.fspath(self.root / "proc")], check=True)
        subprocess.run(["mount", "-t", "sysfs", "sys", os.fspath(self.root / "sys")], check=True)
        for source, target in binds:
            (self.root / target).mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "--bind", source, os.fspath(self.root / target)], check=True)
        shutil.copyfile("/etc/resolv.conf", self.root / "etc/resolv.conf")
        return self

    def __exit__(self, *exc_info):
        _unmount_all(self.root)

    def inside(self, path):
        return "/" + os.path.relpath(path, self.root)

    def run(self, argv, timeout, log_path, env=()):
        with open(log_path, "ab") as log:
            return subprocess.run([*LOW_PRIORITY, "chroot", os.fspath(self.root), *ENV, *env,
                                   *argv], stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout).returncode

    def ids(self, user):
        """(uid, gid) of `user` in the chroot's own passwd file."""
        for line in (self.root / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return int(fields[2]), int(fields[3])
        raise AssertionError(f"no user {user} in the chroot")


def _trust_host_cas(chroot, log_path):
    """The host's local certificate authorities (e.g. an HTTPS proxy's, which pip then meets)
    are trusted in the chroot too, the Debian way: /usr/local/share/ca-certificates."""
    local = pathlib.Path("/usr/local/share/ca-certificates")
    extra = sorted(local.glob("*.crt")) if local.is_dir() else []
    if extra:
        target = chroot.root / "usr/local/share/ca-certificates"
        target.mkdir(parents=True, exist_ok=True)
        for certificate in extra:
            shutil.copyfile(certificate, target / certificate.name)
        assert chroot.run(["update-ca-certificates"], 600, log_path) == 0


def _fresh_root(suite, arch, log_path):
    with open(log_path, "ab") as log:
        result = subprocess.run([*LOW_PRIORITY, os.fspath(ROOTFS), arch, suite],
                                stdout=subprocess.PIPE, stderr=log, timeout=INSTALL_TIMEOUT_S,
                                env={**os.environ, "DOORLINE_ARM_CACHE": os.fspath(CACHE)})
    assert result.returncode == 0, f"tools/arm/rootfs failed:\n{log_path.read_text()[-4000:]}"
    pristine = pathlib.Path(result.stdout.decode().strip().splitlines()[-1])
    run = CACHE / f"run-{suite}-{arch}"
    _remove_tree(run)
    subprocess.run(["cp", "-a", "--reflink=auto", os.fspath(pristine), os.fspath(run)],
                   check=True)
    return run


# -- the first-boot payload, as tools/image/build makes it --------------------------------------

def _image_builder():
    loader = importlib.machinery.SourceFileLoader("image_build",
                                                  os.fspath(ROOT / "tools/image/build"))
    spec = importlib.util.spec_from_loader("image_build", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _source_tarball():
    """This checkout's files (tracked and new, as they are now) as tools/image/build bundles."""
    listed = subprocess.run(["git", "-C", os.fspath(ROOT), "ls-files", "-z", "--cached",
                             "--others", "--exclude-standard"], capture_output=True, check=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in sorted(set(listed.stdout.decode().split("\0")) - {""}):
            if (ROOT / name).is_file():
                tar.add(ROOT / name, arcname=name, recursive=False)
    return buffer.getvalue()


def _first_boot(chroot, suite, log_path):
    """Puts the image builder's boot-partition payload into /boot/firmware and runs the part of
    the first boot that needs no booted Pi. Returns the setup code the image carries."""
    build = _image_builder()
    code = build.make_setup_code()
    opts = types.SimpleNamespace(hostname="door-arm", wifi_ssid=None, wifi_password=None,
                                 wifi_country=None, ssh_key_text=None, admin_user="admin")
    boot = chroot.root / "boot/firmware"
    boot.mkdir(parents=True, exist_ok=True)
    (boot / build.SOURCE_NAME).write_bytes(_source_tarball())
    (boot / build.SETUP_CODE_NAME).write_text(code + "\n")
    (boot / "cmdline.txt").write_text("console=tty1 root=PARTUUID=4e639091-02 rootwait "
                                      + build.FIRSTRUN_ARGS + "\n")
    if suite == "bookworm":
        (boot / "firstrun.sh").write_text(build.firstrun_script(opts))
        argv = ["bash", "/boot/firmware/firstrun.sh"]
    else:
        user_data = build.cloud_init_files(opts)["user-data"]
        runcmd = json.loads(user_data.splitlines()[-1].split(", ", 2)[2].rstrip("]"))
        script = "\n".join(line for line in runcmd.splitlines() if "install.sh" not in line)
        argv = ["bash", "-euc", script]
    assert chroot.run(argv, 600, log_path) == 0, log_path.read_text()[-3000:]
    root = chroot.root
    assert (root / "opt/doorline/src/tools/install/install.sh").exists()
    seeded = root / "var/lib/doorline/setup-code"
    assert seeded.read_text().strip() == code
    assert seeded.stat().st_mode & 0o777 == 0o600
    assert not (boot / build.SETUP_CODE_NAME).exists()
    if suite == "bookworm":
        assert (root / "etc/hostname").read_text().strip() == "door-arm"
        assert not (boot / "firstrun.sh").exists()
        assert "systemd.run" not in (boot / "cmdline.txt").read_text()
        assert (root / "etc/systemd/system/multi-user.target.wants"
                / "doorline-firstboot.service").is_symlink()
    return code


# -- what pip built ----------------------------------------------------------------------------

def _built_from_source(root):
    """Distributions in the installed venv that pip built here: a wheel with a plain
    `linux_<machine>` tag (not a manylinux/musllinux one from PyPI, not a pure-Python `none-any`
    one), or a legacy `setup.py install` (an .egg-info: pip without `wheel` builds that way)."""
    built = []
    site = next(root.glob("opt/doorline/venv/lib/python3*/site-packages"))
    for wheel in site.glob("*.dist-info/WHEEL"):
        tags = re.findall(r"^Tag: (\S+)", wheel.read_text(), re.M)
        if any(re.search(r"-linux_[a-z0-9_]+$", tag) for tag in tags):
            built.append(wheel.parent.name.split("-")[0])
    built += [egg.name.split("-")[0] for egg in site.glob("*.egg-info")]
    return sorted(built)


# -- the call ---------------------------------------------------------------------------------

class InstalledStation(Firmware):
    """The installed unit's ExecStart, run in the chroot as the service user, with the test's
    board file and config in place of the installed ones."""

    def __init__(self, chroot, workdir, config, env):
        super().__init__(workdir, config)
        unit = (chroot.root / "etc/systemd/system/doorline.service").read_text()
        argv = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))
        # as systemd starts it: with the unit's Environment= lines (PYTHONPATH: the service
        # runs `python -S`, so the venv's site-packages come from there)
        unit_env = [assignment for line in re.findall(r"^Environment=(.*)$", unit, re.M)
                    for assignment in shlex.split(line)]
        replace = {"--board": f"{WORK}/board.toml", "--config": chroot.inside(self.config_path),
                   "--state-dir": chroot.inside(self.state_dir)}
        for index, arg in enumerate(argv[:-1]):
            if arg in replace:
                argv[index + 1] = replace[arg]
        uid, gid = chroot.ids("doorline")
        audio_gid = int(re.search(r"^audio:[^:]*:(\d+):", (chroot.root / "etc/group")
                                  .read_text(), re.M).group(1))
        self.unit_argv = argv
        self.argv = [*LOW_PRIORITY, "chroot", f"--userspec={uid}:{gid}",
                     f"--groups={audio_gid}", os.fspath(chroot.root), *ENV,
                     f"HOME={WORK}", *unit_env,
                     *(f"{name}={value}" for name, value in sorted(env.items())),
                     *argv, "--log-level", "DEBUG"]


def _call(chroot, kamailio, baresip_factory, log_path):
    work = chroot.root / WORK.lstrip("/")
    env = write_card(work, rate=ALSA_RATE, mic_hz=MIC_HZ, seen_as=WORK, alsa_dir="/usr/share/alsa")
    uid, gid = chroot.ids("doorline")
    config = station_config(kamailio)
    config["media"] = {"srtp": "mandatory", "srtp_requires_tls": False}
    config["answer"] = {"mode": "auto", "allow": [f"sip:{FLAT1_USER}@127.0.0.1"]}
    # steady test tones through a clock-less file "card": no echo canceller (see alsa_card.py)
    config["audio"] = {**config.get("audio", {}), "echo_cancel": False}
    phone = baresip_factory(FLAT1_USER, registrar=kamailio, srtp=True, tone_hz=PHONE_HZ)
    phone.wait_registered(10)
    station = InstalledStation(chroot, work / "station", config, env)
    for path in [work, *work.rglob("*")]:
        os.chown(path, uid, gid)
    figures = {"command_line": shlex.join(station.unit_argv)}
    started = time.monotonic()
    station.start()
    try:
        station.wait_log(r"registration registered", timeout=300)
        figures["start_to_registered_s"] = round(time.monotonic() - started, 1)
        figures.update(call_both_ways(station, phone, kamailio, work, TALK_S, MIC_HZ, PHONE_HZ,
                                      ALSA_RATE, timeout_scale=6))
        assert figures["encrypted"], "baresip reported no media encryption (SRTP)"
        assert figures["phone_windows"] >= 30, figures
        # the microphone direction: see tests/hal/alsa_card.py for why not the window share
        assert abs(figures["phone_heard_peak_hz"] - MIC_HZ) <= 20, figures
        assert figures["phone_heard_rms"] > 0.05, figures
        assert figures["station_heard_share"] >= 0.7, figures
        assert "conversion: libasound speexrate_medium (C)" in station.log, station.log[-3000:]
        return figures
    finally:
        station.kill()
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"--- firmware log ---\n{station.log[-20000:]}\n")


@pytest.mark.timeout(4 * 3600)
@pytest.mark.parametrize("suite, arch", CASES)
def test_install_and_srtp_call_under_emulation(suite, arch, kamailio, baresip_factory, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (debootstrap, chroot, mounts)")
    for tool in ("debootstrap", "chroot", "mount"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing (tools/install-peers installs it)")
    (CACHE / "logs").mkdir(parents=True, exist_ok=True)
    (CACHE / "results").mkdir(parents=True, exist_ok=True)
    log_path = CACHE / "logs" / f"{suite}-{arch}.log"
    log_path.write_text(f"make test-arm {suite}-{arch} on {platform.machine()} host\n")
    apt_cache = CACHE / f"apt-{suite}-{arch}"
    apt_cache.mkdir(exist_ok=True)
    result = {"suite": suite, "arch": arch, "log": os.fspath(log_path)}
    root = _fresh_root(suite, arch, log_path)
    try:
        with Chroot(root, apt_cache) as chroot:
            _trust_host_cas(chroot, log_path)
            code = _first_boot(chroot, suite, log_path)
            started = time.monotonic()
            status = chroot.run(["make", "-C", "/opt/doorline/src", "install", "BOARD=rpi4"],
                                INSTALL_TIMEOUT_S, log_path)
            result["install_s"] = round(time.monotonic() - started)
            log = log_path.read_text()
            assert status == 0, f"make install failed:\n{log[-5000:]}"
            assert "the service is enabled, it starts at boot" in log
            assert (root / "etc/systemd/system/multi-user.target.wants/doorline.service") \
                .is_symlink()
            assert code in log.split("make -C", 1)[-1], "the installer replaced the image's code"
            result["built_from_source"] = _built_from_source(root)
            result["python"] = next(root.glob("opt/doorline/venv/lib/python3*")).name
            # issue 19: no pyalsaaudio any more (hal/libasound.py uses libasound2 through
            # ctypes); only armhf builds what PyPI has no 32-bit ARM wheel for
            expected = {"cffi", "pylibsrtp"} if arch == "armhf" else set()
            assert set(result["built_from_source"]) <= expected, result
            result.update(_call(chroot, kamailio, baresip_factory, log_path))
            result["passed"] = True
    finally:
        result.setdefault("passed", False)
        (CACHE / "results" / f"{suite}-{arch}.json").write_text(json.dumps(result, indent=1))
        print(f"[{suite}-{arch}] {json.dumps(result)}")
