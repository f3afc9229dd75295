"""docker-compose.yml stays true to the code (no Docker engine here to run it).

What can be checked without running containers is checked: the services and
their start order, that every ``BERTCTR_*`` variable is a real setting, that
every ``bertctr`` command parses with the real CLI parser, that the addresses
the workers are given are the ones the broker and Triton listen on, that the
retrain loop is wired (the fine-tuning job publishes to the very volume the
encoder server serves with ``--repository``, and reads the workers' model
snapshots), that the API serves the workers' snapshots with a liveness check,
that the workers export metrics and Prometheus and Grafana are pinned and
checked (their configuration: ``test_monitoring.py``), and that the image
copies every package the project installs.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from bertctr.cli import build_parser
from bertctr.finetune import parse_duration
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_services_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "kafka",
        "redis",
        "triton",
        "topics",
        "worker",
        "finetune",
        "api",
        "prometheus",
        "grafana",
    }
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in ("worker", "finetune"):
        assert services[name]["depends_on"] == {
            "topics": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
            "triton": {"condition": "service_healthy"},
        }, name
    for name in ("kafka", "redis", "triton"):
        assert "healthcheck" in services[name], name
    # An auto-created topic gets the broker's partition count and breaks the
    # co-partitioned join: topics are created by `bertctr topics create` only.
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_every_bertctr_variable_is_a_setting(compose: dict[str, Any]) -> None:
    known = {f"BERTCTR_{name.upper()}" for name in Settings.model_fields}
    seen = set()
    for service in compose["services"].values():
        for key in service.get("environment") or {}:
            if key.startswith("BERTCTR_"):
                assert key in known, key
                seen.add(key)
    assert {"BERTCTR_KAFKA_BOOTSTRAP", "BERTCTR_REDIS_URL", "BERTCTR_TRITON_URL"} <= seen
    key = compose["services"]["worker"]["environment"]["BERTCTR_CHECKPOINT_KEY"]
    assert ":?" in key, "the checkpoint signing key must be required, never a default"


def test_every_bertctr_command_parses(compose: dict[str, Any]) -> None:
    parser = build_parser()
    commands = [s["command"] for s in compose["services"].values() if "command" in s]
    bertctr = [[_default(a) for a in c] for c in commands if c[0] == "bertctr"]
    assert len(bertctr) == 5  # triton, topics, worker, finetune, api
    for command in bertctr:
        args = parser.parse_args(command[1:])
        assert callable(args.func), command


def test_the_workers_health_check_is_bertctr_health(compose: dict[str, Any]) -> None:
    check = compose["services"]["worker"]["healthcheck"]["test"]
    assert check[0] == "CMD" and check[1:3] == ["bertctr", "health"]
    args = build_parser().parse_args(check[2:])
    assert args.func.__name__ == "cmd_health" and args.local


def test_the_api_serves_on_8080_with_a_liveness_check(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    args = build_parser().parse_args(api["command"][1:])
    assert args.func.__name__ == "cmd_api" and args.host == "0.0.0.0" and args.port == 8080
    assert "8080:8080" in api["ports"]
    check = " ".join(api["healthcheck"]["test"])
    assert "http://localhost:8080/healthz" in check  # liveness: never Redis or the model
    assert api["restart"] == "unless-stopped"
    assert api["depends_on"]["redis"] == {"condition": "service_healthy"}
    # it scores with the workers' snapshots: their checkpoint directory, read-only
    env = api["environment"]
    read = _on_volume(compose, "api", env["BERTCTR_CHECKPOINT_DIR"])
    written = _on_volume(compose, "worker", env["BERTCTR_CHECKPOINT_DIR"])
    assert read is not None and written is not None and read.read_only
    assert (read.volume, read.subpath) == (written.volume, written.subpath)
    for key in SHARED_WITH_WORKERS:
        assert env.get(key) == compose["services"]["worker"]["environment"].get(key), key


def test_worker_replicas_share_one_model_and_keep_their_own_reports(
    compose: dict[str, Any],
) -> None:
    """N replicas: checkpoints on the shared volume (the one learner's, resumed by
    a standby), each replica's health report and Faust data in its own container."""
    worker = compose["services"]["worker"]
    settings = Settings(**_settings_of(worker["environment"]))
    replicas = worker["deploy"]["replicas"]
    assert 2 <= replicas <= settings.partitions
    assert settings.worker_role == "all"  # every replica bids for the learner lease
    shared = _on_volume(compose, "worker", settings.checkpoint_dir)
    assert shared is not None and not shared.read_only
    assert _on_volume(compose, "worker", settings.data_dir) is None, (
        "replicas would read each other's health.json (bertctr health --local)"
    )


def _settings_of(env: dict[str, Any]) -> dict[str, Any]:
    """The settings a service's environment gives (``${VAR:-default}`` at its default)."""
    out = {}
    for key, value in env.items():
        if key.startswith("BERTCTR_"):
            out[key.removeprefix("BERTCTR_").lower()] = _default(str(value))
    return out


def test_workers_export_metrics_and_monitoring_is_pinned(compose: dict[str, Any]) -> None:
    services = compose["services"]
    port = services["worker"]["environment"]["BERTCTR_METRICS_PORT"]
    assert Settings(metrics_port=port).metrics_port == 9100
    for name in ("prometheus", "grafana"):
        service = services[name]
        image, _, tag = service["image"].partition(":")
        assert tag and tag != "latest" and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), image
        assert service["restart"] == "unless-stopped", name
        assert "healthcheck" in service, name
        for spec in service["volumes"]:
            source = spec.split(":")[0]
            assert source in compose["volumes"] or (ROOT / source).exists(), spec
    assert services["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    password = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert ":?" in password, "Grafana's admin password must be required, never a default"


def test_workers_are_pointed_at_the_real_listeners(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["worker"]["environment"]
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://{env['BERTCTR_KAFKA_BOOTSTRAP']}" in advertised.split(",")
    host, port = env["BERTCTR_TRITON_URL"].split(":")
    assert host == "triton"
    serve = build_parser().parse_args(services["triton"]["command"][1:])
    assert serve.grpc_port == int(port) and serve.host == "0.0.0.0"
    assert env["BERTCTR_REDIS_URL"].startswith("redis://redis:6379")
    mounts = [v.split(":")[1] for v in services["worker"]["volumes"]]
    assert env["BERTCTR_IMAGE_DIR"] in mounts
    assert any(env["BERTCTR_CHECKPOINT_DIR"].startswith(m) for m in mounts)


def _default(value: str) -> str:
    """A value as compose reads it with no variables set: ``${VAR:-d}`` is ``d``."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


@dataclass(frozen=True)
class Mount:
    volume: str  # a named volume of the file
    subpath: PurePosixPath  # where in the volume
    read_only: bool


def _on_volume(compose: dict[str, Any], service: str, path: str) -> Mount | None:
    """Which named volume, and where in it, ``path`` is in ``service``'s containers."""
    named = compose.get("volumes") or {}
    found: tuple[PurePosixPath, Mount] | None = None
    for spec in compose["services"][service].get("volumes") or []:
        source, target, *options = spec.split(":")
        target_path = PurePosixPath(target)
        if source not in named or not PurePosixPath(path).is_relative_to(target_path):
            continue
        if found is None or len(target_path.parts) > len(found[0].parts):  # the deepest wins
            read_only = bool(options) and "ro" in options[0].split(",")
            subpath = PurePosixPath(path).relative_to(target_path)
            found = target_path, Mount(source, subpath, read_only)
    return found[1] if found is not None else None


#: what the fine-tuning job must see exactly as the workers do: the same broker,
#: topics, Redis keys, Triton, images, model shape and checkpoint signing key
SHARED_WITH_WORKERS = (
    "BERTCTR_KAFKA_BOOTSTRAP",
    "BERTCTR_TOPIC_PREFIX",
    "BERTCTR_PARTITIONS",
    "BERTCTR_REDIS_URL",
    "BERTCTR_REDIS_PREFIX",
    "BERTCTR_TRITON_URL",
    "BERTCTR_IMAGE_URL_PREFIXES",
    "BERTCTR_CHECKPOINT_KEY",
    "BERTCTR_MODEL",
    "BERTCTR_CONTENT_CROSS_FIELDS",
    "BERTCTR_CONTENT_CROSS_MAX_VALUES",
    "BERTCTR_ATTRIBUTION_WINDOW_S",
)


def check_retrain_loop(compose: dict[str, Any]) -> None:
    """The retrain loop of README "Closing the loop" is wired; AssertionError says what is not."""
    services = compose["services"]
    assert "finetune" in services, "no finetune service"
    parser = build_parser()
    command = [_default(a) for a in services["finetune"].get("command") or []]
    assert command[:2] == ["bertctr", "finetune"], command
    job = parser.parse_args(command[1:])
    assert job.func.__name__ == "cmd_finetune", command
    assert job.every and parse_duration(job.every) > 0, "finetune must run on a schedule"

    serve = parser.parse_args(services["triton"]["command"][1:])
    assert serve.func.__name__ == "cmd_encoder_serve" and serve.repository is not None, (
        "the encoder server must serve the version repository (--repository)"
    )
    served = _on_volume(compose, "triton", str(serve.repository))
    assert served is not None, f"--repository {serve.repository} is not on a named volume"
    assert not served.read_only, "the encoder server writes each version's status.json"

    env = services["finetune"].get("environment") or {}
    worker_env = services["worker"]["environment"]
    assert "BERTCTR_ENCODER_REPOSITORY" in env, "finetune must be told the repository"
    published = _on_volume(compose, "finetune", env["BERTCTR_ENCODER_REPOSITORY"])
    assert published is not None and not published.read_only, (
        "finetune must write BERTCTR_ENCODER_REPOSITORY on a named volume"
    )
    assert (published.volume, published.subpath) == (served.volume, served.subpath), (
        "finetune publishes where the encoder server does not look"
    )

    snapshots = _on_volume(compose, "worker", worker_env["BERTCTR_CHECKPOINT_DIR"])
    assert snapshots is not None, "the workers' checkpoints must be on a named volume"
    read = _on_volume(compose, "finetune", env.get("BERTCTR_CHECKPOINT_DIR", ""))
    assert read is not None and (read.volume, read.subpath) == (
        snapshots.volume,
        snapshots.subpath,
    ), "finetune must read the workers' checkpoints at its BERTCTR_CHECKPOINT_DIR"

    images = _on_volume(compose, "worker", worker_env["BERTCTR_IMAGE_DIR"])
    assert images is not None
    assert _on_volume(compose, "finetune", env.get("BERTCTR_IMAGE_DIR", "")) == images, (
        "finetune must read the workers' image store"
    )
    for key in SHARED_WITH_WORKERS:
        assert env.get(key) == worker_env.get(key), key


def test_the_retrain_loop_is_wired(compose: dict[str, Any]) -> None:
    check_retrain_loop(compose)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(compose: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node = compose
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return mutate


def _volumes(
    service: str, keep: Callable[[str], bool], *extra: str
) -> Callable[[dict[str, Any]], None]:
    def mutate(compose: dict[str, Any]) -> None:
        mounts = compose["services"][service]["volumes"]
        mounts[:] = [m for m in mounts if keep(m)] + list(extra)
        compose["volumes"]["other"] = None

    return mutate


FINETUNE = "services/finetune"
TRITON_SERVE = ["bertctr", "encoder", "serve", "--host=0.0.0.0", "--grpc-port=8001"]
#: a broken wiring -> (the mutation, what the failed check says)
BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "no finetune service": (_set(FINETUNE, None), "no finetune service"),
    "finetune runs something else": (_set(f"{FINETUNE}/command", ["bertctr", "worker"]), "worker"),
    "finetune runs once only": (
        _set(f"{FINETUNE}/command", ["bertctr", "finetune"]),
        "on a schedule",
    ),
    "server without --repository": (_set("services/triton/command", TRITON_SERVE), "--repository"),
    "server serves another path": (
        _set("services/triton/command", [*TRITON_SERVE, "--repository=/elsewhere"]),
        "not on a named volume",
    ),
    "server mounts another volume": (
        _volumes("triton", lambda m: not m.startswith("encoders:"), "other:/encoders"),
        "does not look",
    ),
    "server mounts it read-only": (
        _volumes("triton", lambda m: not m.startswith("encoders:"), "encoders:/encoders:ro"),
        "status.json",
    ),
    "no repository setting": (
        _set(f"{FINETUNE}/environment/BERTCTR_ENCODER_REPOSITORY", None),
        "told the repository",
    ),
    "repository not mounted": (
        _set(f"{FINETUNE}/environment/BERTCTR_ENCODER_REPOSITORY", "/var/lib/encoders"),
        "on a named volume",
    ),
    "repository in a subfolder": (
        _set(f"{FINETUNE}/environment/BERTCTR_ENCODER_REPOSITORY", "/encoders/v"),
        "does not look",
    ),
    "finetune mounts another volume": (
        _volumes("finetune", lambda m: not m.startswith("encoders:"), "other:/encoders"),
        "does not look",
    ),
    "finetune mounts it read-only": (
        _volumes("finetune", lambda m: not m.startswith("encoders:"), "encoders:/encoders:ro"),
        "on a named volume",
    ),
    "no checkpoint mount": (
        _volumes("finetune", lambda m: not m.startswith("worker-state:")),
        "read the workers' checkpoints",
    ),
    "checkpoints mounted elsewhere": (
        _volumes("finetune", lambda m: not m.startswith("worker-state:"), "worker-state:/state:ro"),
        "read the workers' checkpoints",
    ),
    "checkpoints from another volume": (
        _volumes(
            "finetune", lambda m: not m.startswith("worker-state:"), "other:/var/lib/bertctr:ro"
        ),
        "read the workers' checkpoints",
    ),
    "checkpoint dir off the volume": (
        _set(f"{FINETUNE}/environment/BERTCTR_CHECKPOINT_DIR", "/tmp/checkpoints"),
        "read the workers' checkpoints",
    ),
    "checkpoint dir elsewhere on it": (
        _set(f"{FINETUNE}/environment/BERTCTR_CHECKPOINT_DIR", "/var/lib/bertctr/worker"),
        "read the workers' checkpoints",
    ),
    "no image store": (_volumes("finetune", lambda m: not m.startswith("images:")), "image store"),
    "another checkpoint key": (
        _set(f"{FINETUNE}/environment/BERTCTR_CHECKPOINT_KEY", "dev"),
        "BERTCTR_CHECKPOINT_KEY",
    ),
}


@pytest.mark.parametrize("broken", BROKEN, ids=list(BROKEN))
def test_a_broken_retrain_loop_fails_the_check(compose: dict[str, Any], broken: str) -> None:
    mutate, says = BROKEN[broken]
    mutated = copy.deepcopy(compose)
    mutate(mutated)
    with pytest.raises(AssertionError, match=re.escape(says)):
        check_retrain_loop(mutated)


def test_the_image_copies_every_installed_package(compose: dict[str, Any]) -> None:
    dockerfiles = {s["build"]["dockerfile"] for s in compose["services"].values() if "build" in s}
    assert dockerfiles == {"deploy/app.Dockerfile"}
    text = (ROOT / "deploy/app.Dockerfile").read_text()
    copied = {src for line in re.findall(r"^COPY (.+)$", text, re.M) for src in line.split()[:-1]}
    for src in copied:
        assert (ROOT / src).exists(), src
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, packages - copied
    assert "torch==2.13.0" in text and "-c requirements.lock" in text
