"""Shared fixtures for the compat suites (see README.md)."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers  # noqa: E402
from zkutil import CALL_TIMEOUT  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

# kazoo logs every reconnect attempt at WARNING; keep the pytest output readable.
logging.getLogger("kazoo").setLevel(logging.ERROR)

KIND_PARAMS = servers.enabled_kinds()


def ensure_kind_available(kind: str) -> None:
    """Skip (or, with CORRAL_REQUIRE_COMPAT=1, fail) when `kind` cannot run here."""
    reason = servers.unavailable_reason(kind)
    if reason is None:
        return
    if servers.require_compat():
        pytest.fail(f"[{kind}] {reason} (CORRAL_REQUIRE_COMPAT=1 forbids skipping)")
    pytest.skip(f"[{kind}] {reason}")


def start_kind(kind: str, tmp_path_factory, label: str, overrides=None) -> servers.Server:
    ensure_kind_available(kind)
    workdir = tmp_path_factory.mktemp(f"{kind}-{label}")
    return servers.start_server(kind, workdir, overrides)


@pytest.fixture(scope="module", params=KIND_PARAMS)
def zk_server(request, tmp_path_factory):
    """One server per (module, kind). A module may set SERVER_OVERRIDES = {...}."""
    kind = request.param
    overrides = getattr(request.module, "SERVER_OVERRIDES", None)
    label = request.module.__name__.rsplit(".", 1)[-1]
    server = start_kind(kind, tmp_path_factory, label, overrides)
    yield server
    alive = server.is_running()
    server.stop()
    if not alive:
        pytest.fail(
            f"{kind} server died during {label}; log tail:\n{server.log_tail()}", pytrace=False
        )


@pytest.fixture
def make_client(zk_server):
    """Factory for started KazooClients on `zk_server`; all are stopped at teardown."""
    clients: list[KazooClient] = []

    def factory(tap: bool = False, timeout: float = 10.0, auth=None, start: bool = True):
        client = KazooClient(hosts=zk_server.hosts, timeout=timeout, auth_data=auth)
        if tap:
            from zkutil import Tap

            client.tap = Tap(client)
        clients.append(client)
        if start:
            client.start(timeout=CALL_TIMEOUT)
        return client

    yield factory
    for client in clients:
        try:
            client.stop()
        finally:
            client.close()


@pytest.fixture
def zk(make_client):
    """A connected client whose connection is tapped (see zkutil.Tap)."""
    return make_client(tap=True)


@pytest.fixture
def base(request, zk):
    """A fresh persistent subtree named after the test (same name for every kind)."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", request.node.originalname)
    path = f"/{request.module.__name__.rsplit('.', 1)[-1]}-{name}"
    zk.create(path, b"")
    return path
