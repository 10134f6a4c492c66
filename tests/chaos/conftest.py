"""A broker and a Redis of the chaos test's own, which it may stall, kill and restart.

The session-wide ``broker_address`` and ``redis_url`` of tests/conftest.py are
shared with every other test; a chaos test never signals those. Every process
here is signalled by its PID, never by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loyalty_pulse_dev.broker import start_broker
from loyalty_pulse_dev.processes import free_port, stop
from loyalty_pulse_dev.redis_server import start_redis
from tests.conftest import new_settings
from tests.e2e.conftest import Cluster


@dataclass
class Server:
    """A server process on a fixed port: stalled (SIGSTOP/SIGCONT), killed, started again."""

    port: int
    start: Callable[[int], subprocess.Popen[bytes]]
    proc: subprocess.Popen[bytes]
    stalled: bool = False

    def stall(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stalled = True

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)
        self.stalled = False

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.stalled = False

    def restart(self) -> None:
        """A new process on the same port (in memory, so it starts empty)."""
        self.proc = self.start(self.port)

    def stop(self) -> None:
        if self.stalled:
            self.resume()
        stop(self.proc)


def own_server(start: Callable[[int], subprocess.Popen[bytes]]) -> Iterator[Server]:
    port = free_port()
    server = Server(port, start, start(port))
    yield server
    server.stop()


@pytest.fixture
def chaos_broker() -> Iterator[Server]:
    yield from own_server(start_broker)


@pytest.fixture
def chaos_redis() -> Iterator[Server]:
    yield from own_server(start_redis)


@pytest.fixture
def chaos_cluster(
    chaos_broker: Server, chaos_redis: Server, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    broker = f"127.0.0.1:{chaos_broker.port}"
    redis_url = f"redis://127.0.0.1:{chaos_redis.port}/0"
    cluster = Cluster(new_settings(broker, redis_url, tmp_path, request.node.name), tmp_path)
    yield cluster
    # the broker and Redis may be stalled by a failed test: let the workers stop cleanly
    for server in (chaos_broker, chaos_redis):
        if server.stalled:
            server.resume()
    for worker in cluster.workers:
        stop(worker.proc)
