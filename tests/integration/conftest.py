"""Fixtures of the integration tests beyond the peers' (tests/peers/fixtures.py)."""

from tests.integration.house import house_stations  # noqa: F401  (a fixture)
