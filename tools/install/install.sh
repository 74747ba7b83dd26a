#!/usr/bin/env bash
# Installs (or with --uninstall removes) Doorline as a systemd service on Raspberry Pi OS.
#
#   tools/install/install.sh [--uninstall]
#
# Environment:
#   BOARD=rpi4        board file name in boards/ (default: from /proc/device-tree/model)
#   DESTDIR=/tmp/x    install into this tree only: no apt, no useradd, no chown, no systemctl,
#                     no venv; those steps are printed as "would run: ..." instead
#   PURGE=1           with --uninstall: also delete /etc/doorline (the configuration)
#   PYTHON=python3    interpreter for the venv
#   MODEL_FILE=...    where the board model is read (tests point it at a fake file)
set -euo pipefail

readonly SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly PREFIX=/opt/doorline
readonly VENV="$PREFIX/venv"
readonly BOARDS_DIR="$PREFIX/boards"
readonly CONFIG_DIR=/etc/doorline
readonly STATE_DIR=/var/lib/doorline
readonly UNIT=/etc/systemd/system/doorline.service
readonly SERVICE_USER=doorline
# python3-cryptography: the self-signed certificate for `[web] https = true` (seen through the
# venv's system site packages, like lgpio; building it from PyPI on a Pi Zero takes ages).
# libspeexdsp1: echo cancellation, noise suppression, AGC; libspandsp2: G.722 (issue 15; both
# loaded through ctypes by firmware/runtime/audioproc.py and g722.py, only in a call).
# libasound2: the sound card, loaded through ctypes by hal/libasound.py (nothing to build);
# libasound2-plugins: its `speexrate` rate converter (hal/pi.py).
readonly APT_PACKAGES=(python3-venv python3-lgpio python3-cryptography
                       libasound2 libasound2-plugins alsa-utils avahi-daemon
                       libspeexdsp1 libspandsp2
                       tzdata)  # [time] zone: the schedules' time zones (zoneinfo)
# Where PyPI has no wheel for the architecture, pip builds from source: on 32-bit ARM (armhf, as
# on many Pi Zero 2 W and Pi 3 installs) cffi (libffi-dev) and pylibsrtp (libsrtp2-dev,
# libssl-dev: it links -lcrypto; pkg-config finds them), with gcc and python3-dev. On arm64
# every package has a wheel: nothing is compiled. Piwheels is not relied on.
readonly APT_BUILD_PACKAGES_32BIT=(gcc python3-dev libffi-dev libsrtp2-dev libssl-dev pkg-config)
DESTDIR="${DESTDIR:-}"
PYTHON="${PYTHON:-python3}"
MODEL_FILE="${MODEL_FILE:-/proc/device-tree/model}"

# A board file with a [camera] (hal/camera.py) needs PyAV (encoders, V4L2), and the Pi camera
# modules picamera2: both from apt (PyPI has no PyAV wheel for 32-bit Pi OS; picamera2 and
# libcamera come from Raspberry Pi OS's own repository).
camera_packages() {
  grep -Eq '^\[camera\]' "$1" || return 0
  echo python3-av
  if grep -Eq '^[[:space:]]*kind[[:space:]]*=[[:space:]]*"picamera2"' "$1"; then
    echo python3-picamera2
  fi
}

say() { printf 'doorline: %s\n' "$*"; }
die() { printf 'doorline: error: %s\n' "$*" >&2; exit 1; }

# Runs a command that has effects outside DESTDIR, or only prints it in DESTDIR mode.
system() {
  if [ -n "$DESTDIR" ]; then
    printf 'would run:'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# True when apt has an installable version of package $1 (after apt-get update).
has_candidate() {
  apt-cache policy "$1" 2>/dev/null | grep -Eq '^[[:space:]]*Candidate: [^(]'
}

board_from_model() {
  local model
  [ -r "$MODEL_FILE" ] || die "cannot read $MODEL_FILE to find the board; set BOARD= (one of: $(known_boards))"
  model="$(tr -d '\0' < "$MODEL_FILE")"
  case "$model" in
    "Raspberry Pi Zero 2 W"*) echo rpi-zero2w ;;
    "Raspberry Pi 3 "*)       echo rpi3 ;;
    "Raspberry Pi 4 "*|"Raspberry Pi 400"*) echo rpi4 ;;
    "Raspberry Pi 5"*)        echo rpi5 ;;
    *) die "unsupported board model '$model'; set BOARD= (one of: $(known_boards))" ;;
  esac
}

known_boards() {
  local names=() f
  for f in "$SRC"/boards/*.toml; do names+=("$(basename "$f" .toml)"); done
  echo "${names[*]}"
}

# The service runs `python -S` (no `site` module: no .pth files read at every start, issue 14)
# with what `site` would have put on sys.path given explicitly: the venv's site-packages, then
# the system's (the venv is made with --system-site-packages, for python3-lgpio).
service_pythonpath() {
  "$PYTHON" -c 'import site, sys
venv = sys.argv[1] + "/lib/python%d.%d/site-packages" % sys.version_info[:2]
print(":".join([venv] + site.getsitepackages([sys.base_prefix])))' "$VENV"
}

render_unit() {
  local board="$1" pythonpath
  pythonpath="$(service_pythonpath)"
  sed -e "s|@VENV@|$VENV|g" -e "s|@BOARD_FILE@|$BOARDS_DIR/$board.toml|g" \
      -e "s|@CONFIG_DIR@|$CONFIG_DIR|g" -e "s|@STATE_DIR@|$STATE_DIR|g" \
      -e "s|@PYTHONPATH@|$pythonpath|g" \
      "$SRC/tools/install/doorline.service"
}

# The firmware creates config.toml with defaults on first start; those listen on 127.0.0.1 only.
# On a Pi the station must be reachable from the LAN, so a missing config starts from this seed;
# the page is served over HTTPS (a self-signed certificate made on first start, see
# docs/INSTALL.md for trusting or replacing it) because the admin password crosses the LAN.
seed_config() {
  printf '%s\n' '# Doorline configuration (docs/CONFIG.md). Written once by the installer.' \
    '[sip]' 'listen = "0.0.0.0:5060"' '' '[web]' 'listen = "0.0.0.0:8080"' 'https = true'
}

# The one-time code that setting the first admin password from another machine needs
# (firmware/web/setupcode.py: same alphabet, no 0/O/1/I/L). Bytes >= 248 are skipped so that
# every letter is equally likely (248 = 8 * 31).
readonly SETUP_CODE_ALPHABET=23456789ABCDEFGHJKMNPQRSTUVWXYZ
make_setup_code() {
  local code="" byte
  while [ "${#code}" -lt 10 ]; do
    for byte in $(od -An -tu1 -N32 /dev/urandom); do
      if [ "$byte" -lt 248 ] && [ "${#code}" -lt 10 ]; then
        code+="${SETUP_CODE_ALPHABET:$((byte % 31)):1}"
      fi
    done
  done
  printf '%s-%s\n' "${code:0:5}" "${code:5:5}"
}

# Until the admin password is set, STATE_DIR/setup-code (0600) holds the code: kept when the
# firmware or an image build made it already, else made here. Prints it (or nothing when the
# password is set: then the code is gone).
ensure_setup_code() {
  local file="$DESTDIR$STATE_DIR/setup-code" code=""
  if [ -e "$DESTDIR$STATE_DIR/admin.json" ]; then
    rm -f "$file"
    return
  fi
  [ -f "$file" ] && code="$(tr -d ' \t\r\n' < "$file")"
  if ! [[ "$code" =~ ^[${SETUP_CODE_ALPHABET}-]{8,40}$ ]]; then
    code="$(make_setup_code)"
    (umask 077 && printf '%s\n' "$code" > "$file.tmp" && mv "$file.tmp" "$file")
  fi
  chmod 0600 "$file"
  printf '%s\n' "$code"
}

ensure_user() {
  local group
  for group in gpio audio; do
    if [ -n "$DESTDIR" ] || ! getent group "$group" >/dev/null; then
      system groupadd --system -f "$group"
    fi
  done
  if [ -n "$DESTDIR" ] || ! getent passwd "$SERVICE_USER" >/dev/null; then
    system useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
  system usermod --append --groups gpio,audio "$SERVICE_USER"
}

install_all() {
  local board="${BOARD:-}"
  [ -n "$board" ] || board="$(board_from_model)"
  [[ "$board" =~ ^[a-z0-9-]+$ ]] || die "BOARD must be a board name like rpi4 (got '$board')"
  [ -f "$SRC/boards/$board.toml" ] || die "no board file boards/$board.toml (known: $(known_boards))"
  say "installing for board $board${DESTDIR:+ into $DESTDIR}"

  if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo make install), or set DESTDIR= for a staged install"
  fi
  local packages=("${APT_PACKAGES[@]}") arch="" camera=()
  mapfile -t camera < <(camera_packages "$SRC/boards/$board.toml")
  packages+=("${camera[@]}")
  if [ -z "$DESTDIR" ]; then
    arch="$(dpkg --print-architecture)"
  fi
  case "$arch" in
    armhf|armel) packages+=("${APT_BUILD_PACKAGES_32BIT[@]}") ;;
  esac
  system apt-get update
  if [ -z "$DESTDIR" ]; then
    local kept=() package
    for package in "${packages[@]}"; do
      if has_candidate "$package"; then
        kept+=("$package")
      elif has_candidate "${package}t64"; then
        # Trixie renamed libraries for the 64-bit time_t transition (libspandsp2t64).
        kept+=("${package}t64")
      elif [ "$package" = python3-lgpio ]; then
        # From the Raspberry Pi archive: Raspberry Pi OS has it, plain Debian (on a Pi, or the
        # emulated root file systems of `make test-arm`) does not. The station installs and
        # runs without it; the GPIO pins need it (gpiozero's lgpio backend).
        say "warning: python3-lgpio is not in this system's package archive (not Raspberry Pi"
        say "warning: OS?); installing without it: buttons, LEDs and the relay need it to work"
      else
        kept+=("$package")  # apt-get names what is missing
      fi
    done
    packages=("${kept[@]}")
  fi
  system apt-get install -y --no-install-recommends "${packages[@]}"
  ensure_user

  install -d -m 0755 "$DESTDIR$PREFIX" "$DESTDIR$BOARDS_DIR" "$DESTDIR$(dirname "$UNIT")"
  install -m 0644 "$SRC"/boards/*.toml "$DESTDIR$BOARDS_DIR/"
  install -d -m 0700 "$DESTDIR$CONFIG_DIR"
  install -d -m 0750 "$DESTDIR$STATE_DIR"
  if [ ! -e "$DESTDIR$CONFIG_DIR/config.toml" ]; then
    (umask 077 && seed_config > "$DESTDIR$CONFIG_DIR/config.toml")
  fi
  local setup_code
  setup_code="$(ensure_setup_code)"
  system chown -R "$SERVICE_USER:$SERVICE_USER" "$CONFIG_DIR" "$STATE_DIR"

  # --system-site-packages: python3-lgpio comes from apt and gpiozero needs it.
  system "$PYTHON" -m venv --system-site-packages "$VENV"
  system "$VENV/bin/python" -m pip install --quiet --upgrade "$SRC[pi,mqtt]"

  render_unit "$board" > "$DESTDIR$UNIT.tmp"
  chmod 0644 "$DESTDIR$UNIT.tmp"
  mv "$DESTDIR$UNIT.tmp" "$DESTDIR$UNIT"
  # In a chroot or an image build systemd is not running: enable (symlinks only), don't start;
  # the service starts on the next boot. /run/systemd/system exists only under a running
  # systemd (sd_booted(3)).
  local running=1
  [ -z "$DESTDIR" ] && [ ! -d /run/systemd/system ] && running=0
  if [ "$running" = 1 ]; then
    system systemctl daemon-reload
  fi
  system systemctl enable avahi-daemon.service
  system systemctl enable doorline.service
  if [ "$running" = 1 ]; then
    system systemctl restart doorline.service
  else
    say "systemd is not running here (a chroot?): the service is enabled, it starts at boot"
  fi
  local scheme=http
  grep -Eq '^[[:space:]]*https[[:space:]]*=[[:space:]]*true' "$DESTDIR$CONFIG_DIR/config.toml" \
    && scheme=https
  say "installed; the web page is at $scheme://$(hostname).local:8080"
  if [ -n "$setup_code" ]; then
    say "set the admin password there now, with this one-time setup code: $setup_code"
    say "(the code is also in $STATE_DIR/setup-code and in 'journalctl -u doorline';"
    say " it is not needed on the Pi itself and stops working once the password is set)"
  else
    say "the admin password is already set"
  fi
  if [ "$scheme" = https ]; then
    say "the browser will warn about the self-signed certificate: compare its SHA-256"
    say "fingerprint with 'journalctl -u doorline | grep fingerprint' before accepting it"
    say "(docs/INSTALL.md says how to replace it with your own)"
  fi
}

uninstall_all() {
  say "uninstalling${DESTDIR:+ from $DESTDIR}"
  if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo make uninstall), or set DESTDIR="
  fi
  if [ -n "$DESTDIR" ] || [ -e "$UNIT" ]; then
    system systemctl disable --now doorline.service
  fi
  rm -f "$DESTDIR$UNIT"
  system systemctl daemon-reload
  rm -rf "$DESTDIR$VENV" "$DESTDIR$BOARDS_DIR" "$DESTDIR$STATE_DIR"
  if [ "${PURGE:-0}" = 1 ]; then
    rm -rf "$DESTDIR$CONFIG_DIR"
    say "removed the configuration $CONFIG_DIR"
  elif [ -d "$DESTDIR$CONFIG_DIR" ]; then
    say "kept the configuration in $CONFIG_DIR (PURGE=1 removes it)"
  fi
  rmdir "$DESTDIR$PREFIX" 2>/dev/null || true
  if [ -n "$DESTDIR" ] || getent passwd "$SERVICE_USER" >/dev/null; then
    system userdel "$SERVICE_USER"
  fi
}

case "${1:-}" in
  "") install_all ;;
  --uninstall) uninstall_all ;;
  *) die "usage: $0 [--uninstall]" ;;
esac
