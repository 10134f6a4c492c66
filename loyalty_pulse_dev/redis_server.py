"""A private redis-server for the demo and the tests (a fresh machine runs none)."""

from __future__ import annotations

import shutil
import subprocess

from loyalty_pulse_dev.processes import serve

HOST = "127.0.0.1"


class RedisNotInstalled(RuntimeError):
    pass


def start_redis(port: int, timeout_s: float = 10.0) -> subprocess.Popen[bytes]:
    """redis-server on 127.0.0.1:port, nothing persisted; stop it with processes.stop."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisNotInstalled(
            "redis-server is not installed: run ./dev setup (it installs Debian's "
            "redis-server package) or install it with your package manager"
        )
    cmd = [binary, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"]
    return serve(cmd, HOST, port, in_use="pick another port for Redis", timeout_s=timeout_s)
