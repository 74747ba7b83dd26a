"""The executors of transfers and SIP MESSAGE (issue 20): a part of `runtime.station.Station`.

Each method carries out one thing the session layer or the controller decided: the session
layer's `TransferRequested`, `TransferRefused`, `MessageArrived` and `MessageOutcome` go to the
controller; the controller's `Transfer`, `RefuseTransfer`, `SendMessage` and `AnswerMessage`
go to the session layer, with a port pair (a transfer's new call) or a next hop (a MESSAGE)
found here, as for any call (runtime/callexec.py).
"""

import asyncio
import logging

from firmware.app import actions
from firmware.runtime.callexec import close_pair
from firmware.runtime.parts import StationParts
from firmware.runtime.resolver import LocateError, Locator
from firmware.session import events as ev
from firmware.session.routing import route_targets
from firmware.sip.endpoint import Peer
from firmware.sip.uri import URI

log = logging.getLogger("doorline")


class TransferExecutors(StationParts):
    # -- session events -> controller ------------------------------------------------------
    def _transfer_requested(self, event: ev.TransferRequested) -> None:
        self.controller.transfer_requested(event.call_id, event.target, event.replaces,
                                           event.source, self.loop.time(), join=event.join)

    def _transfer_refused(self, event: ev.TransferRefused) -> None:
        log.warning("REFER refused (%d): %s: %s", event.status, event.reason, event.refer_to)
        self.controller.transfer_refused(event.call_id, event.refer_to, event.status,
                                         event.reason, event.source, self.loop.time())

    def _message_arrived(self, event: ev.MessageArrived) -> None:
        self.controller.message_received(event.call_id, event.sender, event.source,
                                         event.source_ip, event.trusted, event.text,
                                         self.loop.time())

    def _message_outcome(self, event: ev.MessageOutcome) -> None:
        if event.status is None or event.status >= 300:
            log.warning("MESSAGE to %s failed: %s", event.to, event.reason)
        else:
            log.info("MESSAGE to %s delivered (%d)", event.to, event.status)
        self.controller.message_outcome(event.call_id, event.to, event.status, event.reason,
                                        self.loop.time())

    # -- controller actions -> session layer -----------------------------------------------
    def _do_transfer(self, action: actions.Transfer) -> None:
        log.info("call %s: %s %s as call %s", action.call_id,
                 "bringing in" if action.join else "transferring to", action.target,
                 action.new_call_id)
        assert self.sessions is not None and self.ua is not None  # a call to transfer: SIP runs
        routed = route_targets([action.target], self.ua.registrar, self.cfg.sip.transport)
        if routed is None:  # a host name (direct-IP mode): RFC 3263 first, the REFER waits
            asyncio.ensure_future(self._transfer_resolving(action))
            return
        self._transfer(action, routed)

    async def _transfer_resolving(self, action: actions.Transfer) -> None:
        uri = URI.parse(action.target)
        assert uri.host is not None  # a configured sip:/sips: URI (config.validate)
        try:
            peers = await Locator().locate(uri.host, uri.port, uri.transport,
                                           uri.scheme == "sips")
        except LocateError as exc:
            log.warning("cannot transfer to %s: %s", action.target, exc)
            peers = []
        now = self.loop.time()
        if self.sessions is None:
            self.controller.call_failed_to_start(action.new_call_id, "SIP not running", now)
        elif not peers:
            self.sessions.refuse_transfer(action.call_id, 503, now)
            self.controller.call_failed_to_start(action.new_call_id,
                                                 "transfer target not found", now)
        else:
            self._transfer(action, [(action.target, peers[0])])
        self._kick()

    def _transfer(self, action: actions.Transfer, routed: "list[tuple[str, Peer]]") -> None:
        assert self.sessions is not None  # the UA runs
        now = self.loop.time()
        ports = self._port_pool()
        try:
            port, pair, no_media = ports.open_pair() + (None,)
        except OSError as exc:
            port, pair, no_media = None, None, exc
        session = self.sessions.transfer(action.call_id, action.new_call_id, routed, ports.host,
                                         port, now, no_media=no_media, join=action.join)
        if session is not None:
            self._pairs[session.id] = pair
        elif pair is not None:
            close_pair(pair)

    def _do_refuse_transfer(self, action: actions.RefuseTransfer) -> None:
        log.warning("REFER on call %s refused (%d)", action.call_id, action.status)
        if self.sessions is not None:
            self.sessions.refuse_transfer(action.call_id, action.status, self.loop.time())

    def _do_send_message(self, action: actions.SendMessage) -> None:
        if self.sessions is None or self.ua is None:
            log.warning("MESSAGE not sent: SIP not running")
            return
        now = self.loop.time()
        for to in action.to:
            routed = route_targets([to], self.ua.registrar, self.cfg.sip.transport)
            if routed is None:  # a host name (direct-IP mode): RFC 3263 first
                asyncio.ensure_future(self._message_resolving(to, action.text))
                continue
            self.sessions.send_message(self.ua.new_id(), to, routed[0][1], action.text, now)

    async def _message_resolving(self, to: str, text: str) -> None:
        uri = URI.parse(to)
        assert uri.host is not None  # a configured sip:/sips: URI (config.validate)
        try:
            peers = await Locator().locate(uri.host, uri.port, uri.transport,
                                           uri.scheme == "sips")
        except LocateError as exc:
            log.warning("MESSAGE to %s not sent: %s", to, exc)
            return
        if self.sessions is not None and self.ua is not None:
            self.sessions.send_message(self.ua.new_id(), to, peers[0], text, self.loop.time())
            self._kick()

    def _do_answer_message(self, action: actions.AnswerMessage) -> None:
        if self.sessions is not None:
            self.sessions.answer_message(action.message_id, action.status, self.loop.time())
