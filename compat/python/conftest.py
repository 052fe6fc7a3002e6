"""Shared fixtures: one broker per test module, stopped however the module ends."""

from __future__ import annotations

import pytest

from broker import start_broker, stop_broker


def _broker_fixture(request, overrides=None):
    failed_before = request.session.testsfailed
    broker = start_broker(overrides)
    try:
        yield broker
    finally:
        alive = broker.process.poll() is None
        broker.stop()
        if request.session.testsfailed > failed_before or not alive:
            # Show what the broker said when a test of this module failed.
            print(f"\n--- {broker.kind} log tail ({broker.bootstrap}) ---\n{broker.log_tail(80)}")
        stop_broker(broker)


@pytest.fixture(scope="module")
def broker(request):
    """A broker with default settings (auto-creation on, num.partitions=1)."""
    yield from _broker_fixture(request)


@pytest.fixture(scope="module")
def group_broker(request):
    """A broker tuned for fast consumer-group tests (groups.GROUP_BROKER_OVERRIDES)."""
    from groups import GROUP_BROKER_OVERRIDES

    yield from _broker_fixture(request, GROUP_BROKER_OVERRIDES)
