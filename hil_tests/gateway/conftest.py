"""Fixtures of the gateway tests: a real mosquitto broker per session."""

from __future__ import annotations

import pytest

from hil_tests.gateway.gateway_proc import GatewayProcess, sgrid_gateway, write_config
from hil_tests.rig.broker import Broker, mosquitto_available

__all__ = ["GatewayProcess", "sgrid_gateway", "write_config"]


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    if not mosquitto_available():
        pytest.fail("mosquitto is required: apt-get install -y mosquitto")
    with Broker(tmp_path_factory.mktemp("mosquitto")) as b:
        yield b
