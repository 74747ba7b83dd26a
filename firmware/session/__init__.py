"""The call session layer, sans-I/O: one `Session` per door call (firmware/session/session.py)
and the `SessionManager` the runtime feeds (SIP call events, controller commands, media ports
and received digits in; plain events out, firmware/session/events.py). Portable core: see
docs/ARCHITECTURE.md "Portable-core rules"."""
