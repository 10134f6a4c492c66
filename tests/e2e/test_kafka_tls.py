"""Kafka over TLS end to end (issue 13, item 3): a throwaway CA, the embedded broker
behind stunnel (mutual TLS), and loyalty-pulse's clients connecting through
``client_kwargs`` with LOYALTY_PULSE_KAFKA_SECURITY_PROTOCOL=SSL.

stunnel (Debian's stunnel4, installed by ./dev setup) terminates TLS on a port of
its own and forwards to the broker's plain listener; the broker advertises the
TLS port, so every connection a client makes after bootstrap is TLS too.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from loyalty_pulse_dev.broker import broker_command
from loyalty_pulse_dev.processes import free_port, serve, stop, wait_for_port
from stream_app.contract import EventType
from stream_app.kafka_security import client_kwargs
from stream_app.settings import Settings
from stream_app.topics import ensure_topics

HOST = "127.0.0.1"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)  # noqa: S607


def make_pki(d: Path) -> None:
    """ca.pem, server.pem/server.key (localhost, 127.0.0.1), client.pem/client.key."""
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=loyalty-pulse test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    for name, usage, san in (
        ("server", "serverAuth", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"),
        ("client", "clientAuth", ""),
    ):
        (d / f"{name}.ext").write_text(
            f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={usage}\nauthorityKeyIdentifier=keyid\n{san}"
        )
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={'localhost' if name == 'server' else name}",
            cwd=d,
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
            cwd=d,
        )  # fmt: skip


def stunnel_binary() -> str:
    binary = shutil.which("stunnel4") or shutil.which("stunnel")
    if binary is None:  # fail, never skip: the TLS path must be tested on every run
        pytest.fail(
            "stunnel is not installed: run ./dev setup (it installs Debian's stunnel4 "
            "package) or: apt-get install stunnel4"
        )
    return binary


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(host:port of the TLS listener, directory with ca.pem and client.pem/.key)."""
    stunnel = stunnel_binary()
    d = tmp_path_factory.mktemp("pki")
    make_pki(d)
    plain, tls = free_port(), free_port()
    cmd = broker_command(plain)
    cmd[cmd.index("--advertised-listener-url") + 1] = f"tcp://{HOST}:{tls}"
    broker = serve(cmd, HOST, plain, in_use="pick another port", timeout_s=20)
    (d / "stunnel.conf").write_text(
        f"foreground = yes\npid =\ndebug = warning\n\n[kafka]\naccept = {HOST}:{tls}\n"
        f"connect = {HOST}:{plain}\ncert = {d / 'server.pem'}\nkey = {d / 'server.key'}\n"
        f"CAfile = {d / 'ca.pem'}\nrequireCert = yes\nverifyChain = yes\n"
    )
    log = (d / "stunnel.log").open("wb")
    tunnel = subprocess.Popen(  # noqa: S603
        [stunnel, str(d / "stunnel.conf")], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(HOST, tls, 10, tunnel)
        yield f"{HOST}:{tls}", d
    finally:
        stop(tunnel)
        stop(broker)
        log.close()


def tls_settings(address: str, pki: Path, **overrides: object) -> Settings:
    tag = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "broker": address,
        "app_id": f"lp-tls-{tag}",
        "topic_purchases": f"tls-{tag}.purchases",
        "topic_enrollments": f"tls-{tag}.enrollments",
        "topic_redemptions": f"tls-{tag}.redemptions",
        "topic_dead_letter": f"tls-{tag}.dead-letter",
        "topic_alerts": f"tls-{tag}.alerts",
        "partitions": 2,
        "kafka_security_protocol": "SSL",
        "kafka_ssl_cafile": str(pki / "ca.pem"),
        "kafka_ssl_certfile": str(pki / "client.pem"),
        "kafka_ssl_keyfile": str(pki / "client.key"),
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


async def produce_and_consume(settings: Settings) -> list[bytes]:
    await ensure_topics(settings)  # the admin client, over TLS
    topic = settings.topic_purchases
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all")
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, f"record-{i}".encode(), key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        **client_kwargs(settings),
        group_id=f"{settings.app_id}-reader",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen: list[bytes] = []
        for _ in range(30):
            batch = await consumer.getmany(timeout_ms=1000)
            seen += [m.value for msgs in batch.values() for m in msgs if m.value]
            if len(seen) >= 10:
                break
        return seen
    finally:
        await consumer.stop()


def test_clients_produce_and_consume_over_mutual_tls(tls_broker: tuple[str, Path]) -> None:
    address, pki = tls_broker
    settings = tls_settings(address, pki)
    assert client_kwargs(settings)["security_protocol"] == "SSL"
    seen = asyncio.run(produce_and_consume(settings))
    assert sorted(seen) == sorted(f"record-{i}".encode() for i in range(10))


def test_a_broker_certificate_from_another_ca_is_refused(
    tls_broker: tuple[str, Path], tmp_path: Path
) -> None:
    address, pki = tls_broker
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", "other.key",
        "-out", "other.pem", "-subj", "/CN=another CA", cwd=tmp_path,
    )  # fmt: skip
    settings = tls_settings(address, pki, kafka_ssl_cafile=str(tmp_path / "other.pem"))
    with pytest.raises((ConnectionError, KafkaError)):
        asyncio.run(ensure_topics(settings, timeout_s=5))


def test_replay_sends_events_over_tls(tls_broker: tuple[str, Path], tmp_path: Path) -> None:
    from loyalty_pulse_dev.simulator import SimulationConfig, generate, to_json_line

    address, pki = tls_broker
    settings = tls_settings(address, pki)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    events = list(itertools.islice(generate(SimulationConfig(customers=20, start=start)), 50))
    file = tmp_path / "events.jsonl"
    file.write_bytes(b"".join(to_json_line(e) for e in events))
    env = {
        **os.environ,
        "LOYALTY_PULSE_BROKER": f"kafka://{address}",
        "LOYALTY_PULSE_TOPIC_PURCHASES": settings.topic_purchases,
        "LOYALTY_PULSE_TOPIC_ENROLLMENTS": settings.topic_enrollments,
        "LOYALTY_PULSE_TOPIC_REDEMPTIONS": settings.topic_redemptions,
        "LOYALTY_PULSE_TOPIC_DEAD_LETTER": settings.topic_dead_letter,
        "LOYALTY_PULSE_TOPIC_ALERTS": settings.topic_alerts,
        "LOYALTY_PULSE_APP_ID": settings.app_id,
        "LOYALTY_PULSE_PARTITIONS": "2",
        "LOYALTY_PULSE_KAFKA_SECURITY_PROTOCOL": "SSL",
        "LOYALTY_PULSE_KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
        "LOYALTY_PULSE_KAFKA_SSL_CERTFILE": settings.kafka_ssl_certfile,
        "LOYALTY_PULSE_KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile,
    }
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "stream_app.cli", "replay", str(file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    from tests.e2e.kafka_io import read_all

    async def read() -> int:
        return sum([len(await read_all(settings, t)) for t in settings.topics.values()])

    assert asyncio.run(read()) == len(events)


def test_a_worker_consumes_over_tls(
    tls_broker: tuple[str, Path], redis_url: str, tmp_path: Path
) -> None:
    """The faust.App gets the TLS context as broker credentials (stream_app/app.py)."""
    import urllib.request

    import orjson

    from loyalty_pulse_dev.processes import spawn
    from stream_app.producer import EventSender
    from tests.e2e.conftest import wait_for

    address, pki = tls_broker
    settings = tls_settings(address, pki)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    events = list(itertools.islice(generate_events(start), 40))
    port = free_port()
    env = {
        env_var: str(getattr(settings, field))
        for field, env_var in (
            ("broker", "LOYALTY_PULSE_BROKER"),
            ("app_id", "LOYALTY_PULSE_APP_ID"),
            ("partitions", "LOYALTY_PULSE_PARTITIONS"),
            ("topic_purchases", "LOYALTY_PULSE_TOPIC_PURCHASES"),
            ("topic_enrollments", "LOYALTY_PULSE_TOPIC_ENROLLMENTS"),
            ("topic_redemptions", "LOYALTY_PULSE_TOPIC_REDEMPTIONS"),
            ("topic_dead_letter", "LOYALTY_PULSE_TOPIC_DEAD_LETTER"),
            ("topic_alerts", "LOYALTY_PULSE_TOPIC_ALERTS"),
            ("kafka_security_protocol", "LOYALTY_PULSE_KAFKA_SECURITY_PROTOCOL"),
            ("kafka_ssl_cafile", "LOYALTY_PULSE_KAFKA_SSL_CAFILE"),
            ("kafka_ssl_certfile", "LOYALTY_PULSE_KAFKA_SSL_CERTFILE"),
            ("kafka_ssl_keyfile", "LOYALTY_PULSE_KAFKA_SSL_KEYFILE"),
        )
    } | {
        "LOYALTY_PULSE_REDIS_URL": redis_url,
        "LOYALTY_PULSE_WEB_PORT": str(port),
        "LOYALTY_PULSE_DATA_DIR": str(tmp_path / "data"),
        "LOYALTY_PULSE_STORE": "memory",
        "LOYALTY_PULSE_LOG_LEVEL": "warning",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = spawn(
            [sys.executable, "-m", "stream_app.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/totals"

    def totals() -> dict[str, Any] | None:
        assert worker.poll() is None, log_path.read_text(errors="replace")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                return dict(orjson.loads(resp.read()))
        except OSError:
            return None

    def taken() -> int:  # applied or rejected
        t: dict[str, Any] = totals() or {"events": {}, "rejected_total": 0}
        return int(sum(t["events"].values())) + int(t["rejected_total"])

    async def send() -> None:
        async with EventSender(settings) as sender:
            for kind, key, value in events:
                await sender.send(kind, key, value)

    try:
        wait_for(
            "the worker to own its partitions", lambda: (t := totals()) and t["partitions"], 90
        )
        asyncio.run(send())
        wait_for("the worker to take every event", lambda: taken() == len(events), 60)
    finally:
        stop(worker)


def generate_events(start: datetime) -> Iterator[tuple[EventType, bytes, bytes]]:
    from loyalty_pulse_dev.simulator import SimulationConfig, generate, to_json_line

    for event in generate(SimulationConfig(customers=20, start=start)):
        yield EventType(str(event["type"])), str(event["customer_id"]).encode(), to_json_line(event)
