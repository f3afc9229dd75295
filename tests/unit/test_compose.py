"""docker-compose.yml stays true to the code (no Docker engine here to run it).

What can be checked without running containers is checked: the services and
their start order, that every ``BERTCTR_*`` variable is a real setting, that
every ``bertctr`` command parses with the real CLI parser, that the addresses
the workers are given are the ones the broker and Triton listen on, and that
the image copies every package the project installs.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from bertctr.cli import build_parser
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_services_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "redis", "triton", "topics", "worker"}
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert services["worker"]["depends_on"] == {
        "topics": {"condition": "service_completed_successfully"},
        "redis": {"condition": "service_healthy"},
        "triton": {"condition": "service_healthy"},
    }
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
    bertctr = [c for c in commands if c[0] == "bertctr"]
    assert len(bertctr) == 3  # triton, topics, worker
    for command in bertctr:
        args = parser.parse_args(command[1:])
        assert callable(args.func), command


def test_the_workers_health_check_is_bertctr_health(compose: dict[str, Any]) -> None:
    check = compose["services"]["worker"]["healthcheck"]["test"]
    assert check[0] == "CMD" and check[1:3] == ["bertctr", "health"]
    args = build_parser().parse_args(check[2:])
    assert args.func.__name__ == "cmd_health" and args.local


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
