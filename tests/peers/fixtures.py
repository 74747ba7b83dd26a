"""pytest fixtures that start real peers on 127.0.0.1 (imported by tests/conftest.py).

- `tmp_workdir`: a fresh directory for one test's peer files (logs, configs, recordings).
- `kamailio`: a started `Kamailio` registrar/proxy with the users in `PEER_USERS`
  (door, flat1, flat2, concierge; passwords in the constants below), TLS enabled;
  stopped after the test. Logs are printed at teardown, so a failing test shows them.
- `baresip_factory`: `baresip_factory(user="flat1", password=None, registrar=None, **options)`
  starts a `Baresip` (options as in tests/peers/baresip.py; `registrar=kamailio` is accepted
  as a shorthand for `("127.0.0.1", kamailio.udp_port)` (`tls_port` and its CA with
  `transport="tls"`), `password` defaults to the user's
  entry in `PEER_USERS`) and stops every instance it made after the test.

- `mosquitto_factory`: `mosquitto_factory(users=None, tls=False)` starts a
  `tests.peers.mosquitto.Mosquitto` broker on a free loopback port and stops every broker it
  made after the test (its log printed at teardown).

A fixture skips (with the reason) only if the peer's binary is not installed.
"""

import pytest

from tests.peers.baresip import Baresip
from tests.peers.kamailio import Kamailio
from tests.peers.mosquitto import Mosquitto
from tests.peers.process import MissingBinary

__all__ = [
    "DOOR_USER", "DOOR_PASSWORD", "FLAT1_USER", "FLAT1_PASSWORD", "FLAT2_USER",
    "FLAT2_PASSWORD", "CONCIERGE_USER", "CONCIERGE_PASSWORD", "PEER_USERS",
    "tmp_workdir", "kamailio", "baresip_factory", "mosquitto_factory",
]

DOOR_USER, DOOR_PASSWORD = "door", "door-secret"
FLAT1_USER, FLAT1_PASSWORD = "flat1", "flat1-secret"
FLAT2_USER, FLAT2_PASSWORD = "flat2", "flat2-secret"
CONCIERGE_USER, CONCIERGE_PASSWORD = "concierge", "concierge-secret"
PEER_USERS = {
    DOOR_USER: DOOR_PASSWORD,
    FLAT1_USER: FLAT1_PASSWORD,
    FLAT2_USER: FLAT2_PASSWORD,
    CONCIERGE_USER: CONCIERGE_PASSWORD,
}


@pytest.fixture
def tmp_workdir(tmp_path):
    workdir = tmp_path / "peers"
    workdir.mkdir()
    return workdir


@pytest.fixture
def kamailio(tmp_workdir):
    try:
        proxy = Kamailio(tmp_workdir / "kamailio", PEER_USERS)
    except MissingBinary as missing:
        pytest.skip(str(missing))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
        # Captured teardown output is shown only when the test failed.
        print(f"--- kamailio log (tail) ---\n{proxy.log[-6000:]}")


@pytest.fixture
def baresip_factory(tmp_workdir):
    phones = []

    def make(user=FLAT1_USER, password=None, registrar=None, **options):
        if isinstance(registrar, Kamailio):
            if options.get("transport") == "tls":
                options.setdefault("ca_path", registrar.ca_path)
                registrar = ("127.0.0.1", registrar.tls_port)
            else:
                registrar = ("127.0.0.1", registrar.udp_port)
        if password is None and registrar is not None:
            password = PEER_USERS.get(user)
        workdir = tmp_workdir / f"baresip-{user}-{len(phones)}"
        try:
            phone = Baresip(workdir, user=user, password=password, registrar=registrar,
                            **options)
        except MissingBinary as missing:
            pytest.skip(str(missing))
        phones.append(phone)
        return phone.start()

    try:
        yield make
    finally:
        for phone in phones:
            phone.stop()
            print(f"--- baresip {phone.user} log (tail) ---\n{phone.log[-4000:]}")


@pytest.fixture
def mosquitto_factory(tmp_workdir):
    brokers = []

    def make(users=None, tls=False):
        try:
            broker = Mosquitto(tmp_workdir / f"mosquitto-{len(brokers)}", users=users, tls=tls)
        except MissingBinary as missing:
            pytest.skip(str(missing))
        brokers.append(broker)
        return broker.start()

    try:
        yield make
    finally:
        for broker in brokers:
            broker.close()
            print(f"--- mosquitto log (tail) ---\n{broker.log[-3000:]}")
