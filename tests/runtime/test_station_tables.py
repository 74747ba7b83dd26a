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
