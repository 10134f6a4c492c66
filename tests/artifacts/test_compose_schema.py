"""docker-compose.yml is a valid Compose file and a complete deployment.

Validated offline against the Compose Specification JSON schema vendored in
tests/data/compose-spec.json (origin and license: tests/data/README.md), then
checked for what a schema cannot see: every service has a healthcheck, every
repository path it mounts exists, every named volume is declared, the
Prometheus and Alertmanager configs it points at are in the repository, and
Prometheus finds the workers by DNS so `--scale worker=N` is scraped.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from jsonschema import Draft201909Validator, FormatChecker
from jsonschema.exceptions import ValidationError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
SCHEMA_PATH = DATA / "compose-spec.json"
COMPOSE_PATH = ROOT / "docker-compose.yml"

SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_PATH.read_text(encoding="utf-8"))

# Top-level keys of the Compose Specification newer than the vendored schema
# (docker-compose 1.29.2, 2021); checked by test_project_name instead.
NEWER_THAN_SCHEMA = {"name"}
# Services allowed to run without a healthcheck, with the reason. None today.
NO_HEALTHCHECK_REASON: dict[str, str] = {}

# -- formats the schema names (jsonschema does not know them) ------------------------

DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
PORT_RANGE = r"\d{1,5}(?:-\d{1,5})?"
PORTS = re.compile(
    rf"^(?:(?:\d{{1,3}}(?:\.\d{{1,3}}){{3}}|\[[0-9a-fA-F:]+\]):)?"
    rf"(?:(?:{PORT_RANGE})?:)?{PORT_RANGE}(?:/(?:tcp|udp|sctp))?$"
)
EXPOSE = re.compile(rf"^{PORT_RANGE}(?:/(?:tcp|udp|sctp))?$")

FORMATS = FormatChecker(formats=())


@FORMATS.checks("duration")
def is_duration(value: object) -> bool:
    return not isinstance(value, str) or bool(DURATION.fullmatch(value))


@FORMATS.checks("ports")
def is_ports(value: object) -> bool:
    return not isinstance(value, str) or bool(PORTS.fullmatch(value))


@FORMATS.checks("expose")
def is_expose(value: object) -> bool:
    return not isinstance(value, str) or bool(EXPOSE.fullmatch(value))


def validator() -> Draft201909Validator:
    return Draft201909Validator(SCHEMA, format_checker=FORMATS)


def schema_errors(compose: dict[str, Any]) -> list[str]:
    """Schema violations of a compose document, as 'path: message'."""
    checked = {k: v for k, v in compose.items() if k not in NEWER_THAN_SCHEMA}
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in sorted(validator().iter_errors(checked), key=lambda e: list(e.absolute_path))
    ]


def services() -> dict[str, Any]:
    result: dict[str, Any] = COMPOSE["services"]
    return result


# -- the schema itself ------------------------------------------------------------------


def test_vendored_schema_is_the_documented_file() -> None:
    """tests/data/README.md records the checksum of the vendored file: no silent edits."""
    note = (DATA / "README.md").read_text(encoding="utf-8")
    match = re.search(r"SHA-256: `([0-9a-f]{64})`", note)
    assert match, "tests/data/README.md must record the SHA-256 of compose-spec.json"
    assert hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest() == match.group(1)


def test_schema_is_draft_2019_09_and_well_formed() -> None:
    assert "draft/2019-09/schema" in SCHEMA["$schema"]
    Draft201909Validator.check_schema(SCHEMA)
    assert SCHEMA["title"] == "Compose Specification"


# -- docker-compose.yml against the schema ---------------------------------------------


def test_compose_file_is_valid() -> None:
    assert schema_errors(COMPOSE) == []


def test_project_name() -> None:
    assert set(COMPOSE) - NEWER_THAN_SCHEMA <= set(SCHEMA["properties"])
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", COMPOSE["name"])


def broken(change: str) -> dict[str, Any]:
    compose = copy.deepcopy(COMPOSE)
    worker = compose["services"]["worker"]
    if change == "unknown service key":
        worker["restart_policy"] = "always"
    elif change == "healthcheck interval not a duration":
        worker["healthcheck"]["interval"] = "15 seconds"
    elif change == "healthcheck retries a string":
        worker["healthcheck"]["retries"] = "five"
    elif change == "unknown depends_on condition":
        worker["depends_on"]["kafka"]["condition"] = "service_ready"
    elif change == "malformed port":
        compose["services"]["grafana"]["ports"] = ["3000:3000:3000"]
    elif change == "unknown top-level key":
        compose["service"] = {}
    elif change == "volumes not a list":
        worker["volumes"] = "/data"
    else:  # pragma: no cover - a typo in the parameter list
        raise AssertionError(change)
    return compose


@pytest.mark.parametrize(
    "change",
    [
        "unknown service key",
        "healthcheck interval not a duration",
        "healthcheck retries a string",
        "unknown depends_on condition",
        "malformed port",
        "unknown top-level key",
        "volumes not a list",
    ],
)
def test_a_broken_compose_file_fails_validation(change: str) -> None:
    assert schema_errors(broken(change)), f"{change} was not caught"
    with pytest.raises(ValidationError):
        validator().validate({k: v for k, v in broken(change).items() if k != "name"})


@pytest.mark.parametrize(
    ("checker", "good", "bad"),
    [
        (is_duration, ["10s", "1m30s", "1.5h", "500ms"], ["10", "10 s", "s", "1d"]),
        (is_ports, ["3000:3000", "127.0.0.1:9090:9090", "6066", "53:53/udp"], ["a:1", "1:2:3"]),
        (is_expose, ["6066", "6066/tcp", "8000-8010"], ["6066:6066", "http"]),
    ],
)
def test_format_checkers(checker: Any, good: list[str], bad: list[str]) -> None:
    assert all(checker(value) for value in good)
    assert not any(checker(value) for value in bad)


# -- beyond the schema ----------------------------------------------------------------------


def test_the_deployment_has_every_service() -> None:
    expected = {"kafka", "redis", "worker", "simulator", "prometheus", "alertmanager", "grafana"}
    assert expected <= services().keys()


@pytest.mark.parametrize("name", sorted(yaml.safe_load(COMPOSE_PATH.read_text())["services"]))
def test_every_service_has_a_healthcheck(name: str) -> None:
    check = services()[name].get("healthcheck")
    if name in NO_HEALTHCHECK_REASON:
        assert NO_HEALTHCHECK_REASON[name].strip()
        return
    assert check, f"{name} has no healthcheck"
    assert not check.get("disable"), f"{name} disables its healthcheck"
    test = check["test"]
    assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, test
    for key in ("interval", "timeout", "retries"):
        assert key in check, f"{name}: healthcheck without {key}"


def test_depends_on_targets_exist_and_healthy_ones_have_checks() -> None:
    for name, service in services().items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in services(), f"{name} depends on unknown service {target}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services()[target], f"{target} cannot become healthy"


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of a service's volumes; source '' for an anonymous volume."""
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            result.append((volume.get("source", ""), volume["target"]))
            continue
        parts = volume.split(":")
        result.append(("", parts[0]) if len(parts) == 1 else (parts[0], parts[1]))
    return result


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def test_bind_mounts_are_repository_paths_that_exist() -> None:
    binds = 0
    for name, service in services().items():
        for source, _ in mounts(service):
            if not is_bind(source):
                continue
            assert source.startswith("./"), f"{name}: mount {source} is not a repository path"
            path = (ROOT / source).resolve()
            assert path.is_relative_to(ROOT), f"{name}: {source} leaves the repository"
            assert path.exists(), f"{name}: {source} does not exist in the repository"
            binds += 1
    assert binds >= 4


def test_named_volumes_are_declared_and_used() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    used = {
        source
        for service in services().values()
        for source, _ in mounts(service)
        if source and not is_bind(source)
    }
    assert used <= declared, f"undeclared volumes: {sorted(used - declared)}"
    assert declared <= used, f"declared but unused volumes: {sorted(declared - used)}"
    assert {"kafka-data", "redis-data", "prometheus-data", "grafana-data"} <= declared


def repository_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository file a container path of a service comes from, via its bind mounts."""
    wanted = PurePosixPath(container_path)
    for source, target in mounts(service):
        if is_bind(source) and (
            wanted == PurePosixPath(target) or PurePosixPath(target) in wanted.parents
        ):
            return ROOT / source / wanted.relative_to(target)
    return None


def flag(service: dict[str, Any], name: str) -> str:
    command = service.get("command") or []
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"{name}=")]
    assert len(values) == 1, f"{name} must be given once in {command}"
    return values[0]


def test_prometheus_config_and_rules_are_mounted_from_the_repository() -> None:
    prometheus = services()["prometheus"]
    config = repository_path(prometheus, flag(prometheus, "--config.file"))
    assert config is not None and config.is_file(), (
        f"--config.file is not a mounted repo file: {config}"
    )
    assert config.resolve() == (ROOT / "deploy" / "prometheus" / "prometheus.yml").resolve()
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    container_dir = PurePosixPath(flag(prometheus, "--config.file")).parent
    rule_files = document.get("rule_files") or []
    assert rule_files, "prometheus.yml loads no rules"
    for rule_file in rule_files:
        rules = repository_path(prometheus, str(container_dir / rule_file))
        assert rules is not None and rules.is_file(), f"rule file {rule_file} is not mounted"


def test_prometheus_scrapes_every_worker_replica_by_dns() -> None:
    prometheus = services()["prometheus"]
    config = repository_path(prometheus, flag(prometheus, "--config.file"))
    assert config is not None
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    worker_port = int(services()["worker"]["expose"][0])
    found = [
        sd
        for job in document["scrape_configs"]
        for sd in job.get("dns_sd_configs") or []
        if "worker" in sd.get("names", [])
    ]
    assert found, "no dns_sd_configs for the worker service"
    assert all(sd.get("type") == "A" and sd.get("port") == worker_port for sd in found), found
    targets = [
        target
        for config_ in document.get("alerting", {}).get("alertmanagers", [])
        for static in config_.get("static_configs", [])
        for target in static.get("targets", [])
    ]
    assert any(t.split(":")[0] in services() for t in targets), f"alertmanager targets: {targets}"


def test_alertmanager_config_is_mounted_from_the_repository() -> None:
    alertmanager = services()["alertmanager"]
    config = repository_path(alertmanager, flag(alertmanager, "--config.file"))
    assert config is not None and config.is_file(), config
    assert "route" in yaml.safe_load(config.read_text(encoding="utf-8"))


def test_worker_is_scalable_and_uses_kafka_and_redis() -> None:
    worker = services()["worker"]
    env = worker["environment"]
    assert env["LOYALTY_PULSE_WEB_HOST"] == "0.0.0.0"  # noqa: S104 - reachable by Prometheus
    assert env["LOYALTY_PULSE_REDIS_URL"] == "redis://redis:6379/0"
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "container_name" not in worker and "ports" not in worker
    assert ("", "/data") in mounts(worker), "each replica needs its own /data"


def test_only_the_ui_is_published_beyond_localhost() -> None:
    for name, service in services().items():
        for port in service.get("ports") or []:
            spec = str(port)
            if name != "grafana":
                assert spec.startswith("127.0.0.1:"), f"{name} publishes {spec} on every interface"
    assert "3000:3000" in services()["grafana"]["ports"]


def test_images_are_pinned() -> None:
    for name, service in services().items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name} has neither image nor build"
            continue
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", f"{name}: pin a version of {image}"
