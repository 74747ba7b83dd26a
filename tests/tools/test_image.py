"""tools/image/build on small synthetic Raspberry Pi OS-like disk images built here with sfdisk,
mkfs.vfat and mtools: the output carries the source and the first-boot files, the input stays
byte-for-byte the same, and images it does not know are refused."""

import hashlib
import io
import json
import lzma
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / "tools" / "image" / "build"
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 rootwait"
BOOKWORM_ISSUE = ("Raspberry Pi reference 2024-11-19\nGenerated using pi-gen, "
                  "https://github.com/RPi-Distro/pi-gen, 891df1e21ed2b6099a2e6a13e26c91dea44b34d4, "
                  "stage2\n")
TRIXIE_ISSUE = BOOKWORM_ISSUE.replace("2024-11-19", "2025-10-01")
SECTOR = 512
FAT_START = 2048                 # sectors
FAT_SECTORS = 40 * 2048          # 40 MiB: big enough for FAT32
MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("sfdisk", "mkfs.vfat", "mcopy", "mdir")),
    reason="needs fdisk, dosfstools and mtools (tools/install-peers installs them)")


def make_disk(path, files, fat=True):
    """A 48 MiB disk image: DOS label, a FAT32 partition holding `files`, a Linux partition."""
    with open(path, "wb") as f:
        f.truncate(48 * 1024 * 1024)
    first_type = "c" if fat else "83"
    layout = (f"label: dos\nstart={FAT_START}, size={FAT_SECTORS}, type={first_type}\n"
              f"start={FAT_START + FAT_SECTORS}, type=83\n")
    subprocess.run(["sfdisk", "-q", str(path)], input=layout, text=True, check=True)
    if fat:
        subprocess.run(["mkfs.vfat", "-F", "32", "-n", "bootfs", "--offset", str(FAT_START),
                        str(path), str(FAT_SECTORS * SECTOR // 1024)],
                       check=True, capture_output=True)
        for name, text in files.items():
            local = path.parent / f"seed-{name}"
            local.write_text(text)
            subprocess.run(["mcopy", "-i", f"{path}@@{FAT_START * SECTOR}", str(local),
                            f"::{name}"], check=True, env=MTOOLS_ENV)
    return path


def boot_files(image):
    spec = f"{image}@@{FAT_START * SECTOR}"
    listing = subprocess.run(["mdir", "-b", "-i", spec, "::/"], check=True, capture_output=True,
                             text=True, env=MTOOLS_ENV).stdout
    names = [line.rsplit("/", 1)[-1] for line in listing.splitlines() if line.strip()]
    return {name: subprocess.run(["mcopy", "-n", "-i", spec, f"::{name}", "-"], check=True,
                                 capture_output=True, env=MTOOLS_ENV).stdout
            for name in names}


def wpa_psk(ssid, passphrase):
    """IEEE 802.11i PSK, computed here independently of the builder."""
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32).hex()


def test_wpa_psk_matches_the_ieee_802_11i_test_vectors():
    # IEEE 802.11i-2004 Annex H.4.1 (also wpa_passphrase's output for these)
    assert wpa_psk("IEEE", "password") == \
        "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
    assert wpa_psk("ThisIsASSID", "ThisIsAPassword") == \
        "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader("image_build", str(BUILD))
    spec = importlib.util.spec_from_loader("image_build", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    assert module.wpa_psk("IEEE", "password") == wpa_psk("IEEE", "password")


def assert_passphrase_nowhere(image, files, passphrase):
    """Neither in any file of the boot partition (as text, JSON- or shell-quoted) nor anywhere
    in the image's bytes."""
    forms = {passphrase, json.dumps(passphrase)[1:-1], shlex.quote(passphrase)}
    for name, data in files.items():
        for form in forms:
            assert form.encode() not in data, f"the Wi-Fi passphrase is in clear in {name}"
    raw = pathlib.Path(image).read_bytes()
    assert passphrase.encode() not in raw, "the Wi-Fi passphrase is in clear in the image"


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def build(*args):
    return subprocess.run([sys.executable, str(BUILD), *map(str, args)], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def ssh_key(tmp_path):
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3dGVzdGtleWZvcmRvb3JsaW5l door@test\n")
    return key


def assert_bundles_the_source(files):
    with tarfile.open(fileobj=io.BytesIO(files["doorline-src.tar.gz"])) as tar:
        names = set(tar.getnames())
    assert {"tools/install/install.sh", "firmware/__main__.py", "pyproject.toml"} <= names


def test_bookworm_gets_firstrun_and_the_imager_kernel_arguments(tmp_path, ssh_key):
    source = make_disk(tmp_path / "raspios.img",
                       {"cmdline.txt": CMDLINE + "\n", "issue.txt": BOOKWORM_ISSUE})
    before = sha256(source)
    ssid = "Flat 3 \"guest\"; $(reboot)"
    result = build(source, "--output", tmp_path / "door.img", "--hostname", "door1",
                   "--wifi-ssid", ssid, "--wifi-password", "it's 'secret'", "--wifi-country",
                   "DE", "--ssh-key", ssh_key)
    assert result.returncode == 0, result.stderr
    assert "Bookworm" in result.stdout and "https://door1.local:8080" in result.stdout
    assert sha256(source) == before
    files = boot_files(tmp_path / "door.img")
    assert files["cmdline.txt"].decode() == (
        CMDLINE + " systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot "
        "systemd.unit=kernel-command-line.target\n")
    assert_bundles_the_source(files)
    assert "user-data" not in files
    script = files["firstrun.sh"].decode()
    assert script.startswith("#!/bin/bash\n")
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    # values reach the script as single shell words, exactly as given
    assignments = [line for line in script.splitlines()
                   if line.split("=", 1)[0] in ("HOSTNAME_NEW", "SSID", "PSK", "KEY")]
    shown = subprocess.run(["bash", "-c", "\n".join(assignments) +
                            '\nprintf "%s\\n" "$HOSTNAME_NEW" "$SSID" "$PSK" "$KEY"'],
                           capture_output=True, text=True, check=True).stdout
    # the Wi-Fi key as NetworkManager accepts it, derived from the passphrase, never the
    # passphrase itself (issue 12)
    assert shown.splitlines() == ["door1", ssid, wpa_psk(ssid, "it's 'secret'"),
                                  ssh_key.read_text().strip()]
    assert_passphrase_nowhere(tmp_path / "door.img", files, "it's 'secret'")
    assert 'chmod 600 "$conn"' in script and "umask 077" in script
    assert "do_wifi_country DE" in script
    assert "tools/install/install.sh" in script and "doorline-firstboot.service" in script
    assert "sed -i 's| systemd.run.*||g'" in script


def test_rebuilding_a_built_image_does_not_repeat_the_kernel_arguments(tmp_path):
    source = make_disk(tmp_path / "raspios.img",
                       {"cmdline.txt": CMDLINE + "\n", "issue.txt": BOOKWORM_ISSUE})
    assert build(source, "--output", tmp_path / "once.img").returncode == 0
    assert build(tmp_path / "once.img", "--output", tmp_path / "twice.img").returncode == 0
    cmdline = boot_files(tmp_path / "twice.img")["cmdline.txt"].decode()
    assert cmdline.count("systemd.run=") == 1


def test_trixie_gets_cloud_init_seed(tmp_path, ssh_key):
    source = make_disk(tmp_path / "raspios.img", {
        "cmdline.txt": CMDLINE + "\n", "issue.txt": TRIXIE_ISSUE,
        "user-data": "#cloud-config\n", "meta-data": "instance-id: rpios-image\n"})
    before = sha256(source)
    result = build(source, "--output", tmp_path / "door.img", "--hostname", "gate",
                   "--wifi-ssid", "Home: \"5G\"", "--wifi-password", "pa:ss word#1",
                   "--wifi-country", "NL", "--ssh-key", ssh_key)
    assert result.returncode == 0, result.stderr
    assert "Trixie" in result.stdout
    assert sha256(source) == before
    files = boot_files(tmp_path / "door.img")
    assert files["cmdline.txt"].decode() == CMDLINE + "\n"  # cloud-init needs no kernel args
    assert "firstrun.sh" not in files
    assert_bundles_the_source(files)
    user_data = files["user-data"].decode().splitlines()
    assert user_data[0] == "#cloud-config"
    values = {line.split(":", 1)[0].strip(" -"): line.split(":", 1)[1].strip()
              for line in user_data[1:] if ": " in line}
    assert json.loads(values["hostname"]) == "gate"
    assert json.loads(values["name"]) == "admin"
    assert json.loads(values["ssh_authorized_keys"])[0] == ssh_key.read_text().strip()
    runcmd = json.loads(user_data[-1].split(", ", 2)[2].rstrip("]"))
    assert "tar -xzf" in runcmd and runcmd.rstrip().endswith("tools/install/install.sh")
    subprocess.run(["bash", "-n", "-c", runcmd], check=True)
    assert files["meta-data"].decode().startswith("instance-id: doorline-gate-")
    network = files["network-config"].decode()
    assert '"Home: \\"5G\\"":' in network
    key = wpa_psk('Home: "5G"', "pa:ss word#1")
    assert f'password: "{key}"' in network
    assert_passphrase_nowhere(tmp_path / "door.img", files, "pa:ss word#1")
    assert "chmod 600 /etc/netplan/*.yaml" in files["user-data"].decode()
    assert 'regulatory-domain: "NL"' in network


def test_xz_input_is_decompressed_and_left_alone(tmp_path):
    raw = make_disk(tmp_path / "raspios.img",
                    {"cmdline.txt": CMDLINE + "\n", "issue.txt": BOOKWORM_ISSUE})
    packed = tmp_path / "raspios.img.xz"
    packed.write_bytes(lzma.compress(raw.read_bytes(), preset=0))
    before = sha256(packed)
    result = build(packed, "--output", tmp_path / "door.img")
    assert result.returncode == 0, result.stderr
    assert sha256(packed) == before
    assert (tmp_path / "door.img").stat().st_size == raw.stat().st_size
    assert "firstrun.sh" in boot_files(tmp_path / "door.img")


@pytest.mark.parametrize("files, message", [
    ({"cmdline.txt": CMDLINE, "issue.txt": "Ubuntu 24.04 LTS\n"},
     "unknown image: issue.txt is not a Raspberry Pi OS (pi-gen) release note"),
    ({"cmdline.txt": CMDLINE, "issue.txt": BOOKWORM_ISSUE.replace("2024-11-19", "2023-05-03")},
     "unsupported Raspberry Pi OS release dated 2023-05-03"),
    ({"cmdline.txt": CMDLINE}, "this does not look like a Raspberry Pi OS image"),
])
def test_unknown_images_are_refused(tmp_path, files, message):
    source = make_disk(tmp_path / "other.img", files)
    before = sha256(source)
    result = build(source, "--output", tmp_path / "door.img")
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "door.img").exists()
    assert sha256(source) == before


def test_an_image_without_a_fat_partition_is_refused(tmp_path):
    source = make_disk(tmp_path / "linux.img", {}, fat=False)
    result = build(source, "--output", tmp_path / "door.img")
    assert result.returncode == 1
    assert "no FAT boot partition" in result.stderr


def test_output_may_not_overwrite_the_input(tmp_path):
    source = make_disk(tmp_path / "raspios.img",
                       {"cmdline.txt": CMDLINE, "issue.txt": BOOKWORM_ISSUE})
    before = sha256(source)
    result = build(source, "--output", source)
    assert result.returncode == 1 and "must not be the input" in result.stderr
    assert sha256(source) == before


@pytest.mark.parametrize("args", [
    ["--hostname", "Door_1"], ["--hostname", "a;b"], ["--wifi-password", "x" * 10],
    ["--wifi-ssid", "n", "--wifi-password", "short"], ["--wifi-ssid", "n", "--wifi-country", "de"],
    ["--wifi-ssid", "n", "--wifi-password", "pässwörter1"], ["--wifi-ssid", "n" * 33],
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, args):
    result = build(tmp_path / "missing.img", "--output", tmp_path / "door.img", *args)
    assert result.returncode == 2, shlex.join(args)
    assert not (tmp_path / "door.img").exists()


# -- the one-time setup code -------------------------------------------------------------------
def printed_code(stdout):
    line = next(line for line in stdout.splitlines() if line.startswith("Setup code"))
    return line.rsplit(": ", 1)[1]


@pytest.mark.parametrize("release", ["bookworm", "trixie"])
def test_the_image_carries_a_fresh_setup_code_shown_to_the_builder(tmp_path, release):
    from firmware.web import setupcode
    files = {"cmdline.txt": CMDLINE + "\n", "issue.txt": BOOKWORM_ISSUE}
    if release == "trixie":
        files.update({"issue.txt": TRIXIE_ISSUE, "user-data": "#cloud-config\n"})
    source = make_disk(tmp_path / "raspios.img", files)
    result = build(source, "--output", tmp_path / "door.img", "--hostname", "door1")
    assert result.returncode == 0, result.stderr
    code = printed_code(result.stdout)
    assert setupcode.is_valid(code) and len(setupcode.normalise(code)) == 10
    assert "https://door1.local:8080" in result.stdout
    note = tmp_path / "door.img.setup-code.txt"
    assert note.read_text().splitlines()[0] == code
    assert os.stat(note).st_mode & 0o777 == 0o600
    assert str(note) in result.stdout
    boot = boot_files(tmp_path / "door.img")
    assert boot["doorline-setup-code"].decode().strip() == code
    first_boot = boot["firstrun.sh"].decode() if release == "bookworm" else \
        json.loads(boot["user-data"].decode().splitlines()[-1].split(", ", 2)[2].rstrip("]"))
    assert "/var/lib/doorline/setup-code" in first_boot
    assert 'rm -f "$boot/doorline-setup-code"' in first_boot
    # a second image gets another code
    again = build(source, "--output", tmp_path / "door2.img")
    assert again.returncode == 0 and printed_code(again.stdout) != code


def test_first_boot_moves_the_code_into_the_state_dir_and_off_the_boot_partition(tmp_path):
    """The first-boot commands, run with their absolute paths moved under tmp_path: the code
    ends up where the installer and the firmware read it (0600), and leaves the boot partition."""
    source = make_disk(tmp_path / "raspios.img", {
        "cmdline.txt": CMDLINE + "\n", "issue.txt": TRIXIE_ISSUE, "user-data": "#cloud-config\n"})
    result = build(source, "--output", tmp_path / "door.img")
    assert result.returncode == 0, result.stderr
    boot = boot_files(tmp_path / "door.img")
    runcmd = json.loads(boot["user-data"].decode().splitlines()[-1].split(", ", 2)[2].rstrip("]"))
    commands = "\n".join(line for line in runcmd.splitlines() if "install.sh" not in line)
    root = tmp_path / "root"
    (root / "boot/firmware").mkdir(parents=True)
    for name in ("doorline-src.tar.gz", "doorline-setup-code"):
        (root / "boot/firmware" / name).write_bytes(boot[name])
    commands = re.sub(r'(?<=[\s=;"(])/(?=(boot|opt|var)\b)', f"{root}/", commands)
    subprocess.run(["bash", "-euc", commands], check=True, timeout=30)
    seeded = root / "var/lib/doorline/setup-code"
    assert seeded.read_text().strip() == printed_code(result.stdout)
    assert os.stat(seeded).st_mode & 0o777 == 0o600
    assert not (root / "boot/firmware/doorline-setup-code").exists()
    assert (root / "opt/doorline/src/tools/install/install.sh").exists()

