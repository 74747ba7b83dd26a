# Doorline — the two commands a user needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BOARD  ?= pc-sim
STATE  ?= state
CONFIG ?= $(STATE)/config.toml

.PHONY: run test lint peers venv clean bench fuzz install uninstall test-micropython image test-arm

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# `make run CAMERA=pattern` (or CAMERA=picture.jpg): the simulated board with a camera
run: $(STAMP)
	$(PY) -m firmware --board $(BOARD) --config $(CONFIG) --state-dir $(STATE) $(if $(CAMERA),--camera $(CAMERA))

peers:
	tools/install-peers

# ruff, then mypy over firmware/, hal/ and tools/ (configured in pyproject.toml [tool.mypy]).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: peers $(STAMP) lint test-micropython
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Doorline side by side with baresip (docs/BENCH.md); QUICK=1 for the < 2 minute version.
bench: peers $(STAMP)
	tools/bench/run $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# Every hypothesis test (SIP, SDP, RTP/RTCP/RFC 4733 parsers, config validator) with many cases:
# FUZZ_EXAMPLES per test (default 20000). See tests/hardening/fuzz.py.
fuzz: $(STAMP)
	$(PY) -m pytest -q -p tests.hardening.fuzz -m "not peers" --hypothesis-show-statistics \
		tests/sip tests/sdp tests/rtp tests/hardening $(PYTEST_ARGS)

# On a Raspberry Pi: `sudo make install [BOARD=rpi4]`; `make install DESTDIR=/tmp/tree` stages
# the files only. BOARD/DESTDIR/PURGE given on the command line reach the script's environment.
install:
	tools/install/install.sh

uninstall:
	tools/install/install.sh --uninstall

# make image IMAGE=2025-10-01-raspios-trixie-arm64-lite.img.xz [OUTPUT=doorline.img] [HOST=door1]
# (Wi-Fi and SSH key: call tools/image/build directly, see docs/INSTALL.md)
image:
	@test -n "$$IMAGE" || { echo "usage: make image IMAGE=raspios.img.xz [OUTPUT=doorline.img] [HOST=doorline]" >&2; exit 2; }
	tools/image/build "$$IMAGE" --output "$${OUTPUT:-doorline.img}" --hostname "$${HOST:-doorline}"

# The portable core's unit tests under the MicroPython Unix port, and its mpy-cross compile.
test-micropython: $(STAMP)
	$(PY) tools/mpy/compile.py
	$(VENV)/bin/micropython -X heapsize=512M tools/mpy/runner.py

# ARM installs under emulation (docs/INSTALL.md "Tested on ARM"): arm64 and armhf root file systems
# of Debian Bookworm and Trixie (debootstrap + qemu-user-static, cached in
# $${XDG_CACHE_HOME:-~/.cache}/doorline-arm), `make install` in each and one SRTP call against
# Kamailio and baresip. Hours on 2 cores, so not part of `make test`; needs root and network.
# TARGETS="bookworm-arm64 trixie-armhf" runs only those.
test-arm: peers $(STAMP)
	DOORLINE_ARM=1 nice -n 19 ionice -c3 $(PY) -m pytest -q -s tests/arm \
		$(if $(TARGETS),-k "$(subst $(eval) , or ,$(strip $(TARGETS)))") $(PYTEST_ARGS)
