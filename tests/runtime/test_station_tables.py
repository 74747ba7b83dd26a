"""The runtime decides nothing and dispatches by explicit tables (issue 13): every event the
session layer emits and every action the controller asks for has one executor, looked up by
type; no dispatch by name (`getattr(self, "_do_" + ...)`) is left in runtime/."""

import asyncio
import pathlib

from firmware import config as configuration
from firmware.app import actions
from firmware.runtime.station import Station
from firmware.session import events
from firmware.sip.useragent import MappingChanged, MessageRejected, RegistrationChanged

RUNTIME = pathlib.Path(__file__).resolve().parents[2] / "firmware" / "runtime"


def _subclasses(module, base):
    return {value for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, base) and value is not base}


def _station():
    loop = asyncio.new_event_loop()
    try:
        return Station(configuration.validate({}), None, loop=loop)
    finally:
        loop.close()


def test_every_session_event_and_controller_action_has_one_executor():
    station = _station()
    assert set(station._session_executors) == _subclasses(events, events.SessionEvent)
    assert set(station._action_executors) == _subclasses(actions, actions.Action)
    assert set(station._ua_executors) == {RegistrationChanged, MessageRejected, MappingChanged}
    for table in (station._session_executors, station._action_executors):
        assert all(callable(executor) for executor in table.values())


def test_no_dispatch_by_name_and_no_reaching_through_layers_in_the_runtime():
    for path in sorted(RUNTIME.glob("*.py")):
        source = path.read_text()
        assert '"_do_" +' not in source, path.name
        assert "ua.endpoint." not in source, path.name
        assert "calls.ua." not in source and "manager.ua." not in source, path.name


def test_what_an_executor_makes_sip_send_leaves_before_the_next_executor_runs():
    """Issue 14 (INVITE -> 200): the Answer executor makes the SIP core queue the 200; it must
    reach the socket before the executors that follow in the same pass (a cue's thread, the
    event log, the LEDs, the media thread), not after all of them."""
    station = _station()
    order = []

    class UA:
        queued = []

        def datagrams_to_send(self):
            out, UA.queued = UA.queued, []
            return out

    class Transports:
        def send(self, data, peer):
            order.append(("sent", data))

    station.ua, station.transports = UA(), Transports()
    table = {int: lambda item: (order.append(("answer", item)), UA.queued.append((b"200", "p"))),
             str: lambda item: order.append(("cue", item))}
    station._run_executor(1, table)
    station._run_executor("ring", table)
    assert order == [("answer", 1), ("sent", b"200"), ("cue", "ring")]
