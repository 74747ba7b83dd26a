"""Shared test set-up: where the conformance vectors are, and the real-peer fixtures."""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = ROOT.parent / "shared" / "vectors"


@pytest.fixture(scope="session")
def vectors():
    if not VECTORS.is_dir():
        pytest.fail(f"conformance vectors not found at {VECTORS} (expected ../shared/vectors)")
    return VECTORS
from tests.peers.fixtures import *  # noqa: E402,F401,F403
