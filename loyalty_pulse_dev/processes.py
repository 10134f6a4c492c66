"""Child processes that cannot outlive the command that started them."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import IO

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session; Linux ends it if this process dies first.

    Its own session keeps a terminal's Ctrl-C from reaching it directly, so the
    caller decides the order of shutdown (traffic, then worker, then broker).
    """
    return subprocess.Popen(  # noqa: S603 - commands are built by this package
        list(cmd),
        env={**os.environ, **(env or {})},
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509
    )


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def wait_for_port(
    host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with code {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f}s")


def serve(
    cmd: Sequence[str],
    host: str,
    port: int,
    *,
    in_use: str,
    timeout_s: float,
    log: int | IO[bytes] | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start a server on host:port and wait until it accepts connections.

    ``in_use`` is the message when the port is taken; a server that fails to
    come up is killed, never left behind.
    """
    if not port_is_free(host, port):
        raise RuntimeError(f"port {port} on {host} is in use: {in_use}")
    stderr = subprocess.STDOUT if log is not None else None
    proc = spawn(cmd, stdout=log, stderr=stderr)
    try:
        wait_for_port(host, port, timeout_s, proc)
    except Exception:
        proc.kill()
        proc.wait()
        raise
    return proc


def port_is_free(host: str, port: int) -> bool:
    """True when a server could listen there (connections in TIME_WAIT don't count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
