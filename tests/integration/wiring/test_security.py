"""Redis AUTH and TLS pass through from the environment, and no secret is ever shown.

A real ``redis-server`` is started for each case, with ``requirepass`` (and
TLS with a CA made here by ``openssl``); the worker, ``bertctr stats``,
``bertctr health`` and ``bertctr api`` must work against it with the
password given only as ``BERTCTR_REDIS_PASSWORD``, and the password must
appear in none of their output, logs, ``/metrics`` or error messages.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from bertctr.harness.api import ApiServer
from bertctr.harness.kafka import consume, publish
from bertctr.harness.procs import free_port, spawn, stop_process
from bertctr.harness.stack import EmbeddedStack
from bertctr.harness.workers import REPLAY, Namespace
from schemas.topics import CLICKS, IMPRESSIONS, LABELLED, full_name
from tests.integration.conftest import WorkerEnv, wait_until
from wiring.connections import redact

pytestmark = pytest.mark.integration

SECRET = "s3cret-Pa55-for-bertctr-tests"


@dataclass
class SecuredRedis:
    url: str
    env: dict[str, str]
    log: Path


def _wait_redis(client: redis.Redis, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"redis-server did not start: {log.read_text()}")


@pytest.fixture
def auth_redis(tmp_path: Path) -> Iterator[SecuredRedis]:
    port = free_port()
    log = tmp_path / "redis.log"
    args = ["--port", str(port), "--requirepass", SECRET, "--save", "", "--appendonly", "no"]
    proc = spawn([shutil.which("redis-server") or "redis-server", *args], log_path=log)
    try:
        _wait_redis(redis.Redis(port=port, password=SECRET), proc, log)
        url = f"redis://127.0.0.1:{port}/0"
        yield SecuredRedis(url, {"BERTCTR_REDIS_URL": url, "BERTCTR_REDIS_PASSWORD": SECRET}, log)
    finally:
        stop_process(proc)


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, made by the openssl CLI."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=bertctr-test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    return subprocess.run(
        [sys.executable, "-m", "bertctr.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_password_only_in_the_environment_and_never_shown(auth_redis: SecuredRedis) -> None:
    ok = _run(auth_redis.env, "stats", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["total"]["impressions"] == 0

    refused = _run({"BERTCTR_REDIS_URL": auth_redis.url}, "stats", "--json")
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"bertctr stats: Redis at {auth_redis.url}: ")
    assert "authenticated" in refused.stderr and "Traceback" not in refused.stderr

    wrong_url = auth_redis.url.replace("redis://", "redis://:not-the-password@")
    wrong = _run({"BERTCTR_REDIS_URL": wrong_url}, "stats", "--json")
    assert wrong.returncode == 2 and ":***@127.0.0.1" in wrong.stderr, wrong.stderr
    assert "not-the-password" not in wrong.stderr + wrong.stdout
    for out in (ok, refused, wrong):
        assert SECRET not in out.stdout + out.stderr
    assert redact(f"redis://user:{SECRET}@h:1/0") == "redis://user:***@h:1/0"


def _traffic(prefix: str, n: int, base: float) -> list[Any]:
    msgs = []
    for i in range(n):
        imp = {
            "event_id": f"ev-{i}",
            "impression_id": f"imp-{i}",
            "ts": base + i,
            "item_id": f"item-{i % 2}",
            "image_id": "img",
            "variant": f"v{i % 2}",
            "position": 0,
            "segment": {"device": "mobile", "geo": "DE"},
        }
        key = f"imp-{i}".encode()
        msgs.append((full_name(prefix, IMPRESSIONS), key, json.dumps(imp).encode()))
        if i % 4 == 0:
            click = {"event_id": f"c-{i}", "impression_id": f"imp-{i}", "ts": base + i + 1}
            msgs.append((full_name(prefix, CLICKS), key, json.dumps(click).encode()))
    return msgs


def test_worker_health_and_api_on_a_password_protected_redis(
    stack: EmbeddedStack, auth_redis: SecuredRedis, tmp_path: Path
) -> None:
    env = WorkerEnv(stack, tmp_path, Namespace.fresh("sec", redis_root="test:"))
    env.overrides.update({**auth_redis.env, "BERTCTR_ATTRIBUTION_WINDOW_S": "30", **REPLAY})
    metrics_port = free_port()
    env.overrides["BERTCTR_METRICS_PORT"] = str(metrics_port)
    try:
        env.cli("topics", "create")
        env.start_worker()
        msgs = _traffic(env.topic_prefix, 80, time.time() - 50_000)
        asyncio.run(publish(stack.kafka_bootstrap, msgs))
        labelled = full_name(env.topic_prefix, LABELLED)
        asyncio.run(consume(stack.kafka_bootstrap, labelled, 80, timeout_s=120, settle_s=1))

        def counted() -> bool:
            stats = json.loads(env.cli("stats", "--json", "--view", "settled"))
            return int(stats["total"]["impressions"]) == 80

        assert wait_until(counted, 60), env.logs()
        env.wait_healthy()
        health = env.cli("health", "--json")
        with ApiServer(env.env(), tmp_path / "api.log") as api:
            _, ready = api.request("GET", "/readyz")
            assert ready["checks"]["redis"]["ok"] is True, ready
            shown = [
                health,
                env.cli("stats", "--json"),
                json.dumps(api.get("/ctr")),
                json.dumps(api.get("/fleet")),
                api.request("GET", "/metrics")[1],
            ]
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
                shown.append(resp.read().decode())
            shown.append(api.logs(tail=1_000_000))
        shown.append(env.logs(tail=1_000_000))
        for text in shown:
            assert SECRET not in text
    finally:
        env.stop()
        client = redis.Redis.from_url(auth_redis.url, password=SECRET)
        client.flushall()
        client.close()


def test_tls_redis_with_a_private_ca(tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    port = free_port()
    log = tmp_path / "redis-tls.log"
    args = [
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(ca),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        SECRET,
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    proc = spawn([shutil.which("redis-server") or "redis-server", *args], log_path=log)
    try:
        probe = redis.Redis("127.0.0.1", port, password=SECRET, ssl=True, ssl_ca_certs=str(ca))
        _wait_redis(probe, proc, log)
        env = {
            "BERTCTR_REDIS_URL": f"rediss://127.0.0.1:{port}/0",
            "BERTCTR_REDIS_PASSWORD": SECRET,
            "BERTCTR_REDIS_SSL_CA_CERTS": str(ca),
        }
        ok = _run(env, "stats", "--json")
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["view"] == "live"
        # without the CA the server's certificate is not trusted: refused, secret unshown
        untrusted = _run({k: v for k, v in env.items() if "CA_CERTS" not in k}, "stats", "--json")
        assert untrusted.returncode != 0
        assert "certificate verify failed" in untrusted.stderr.lower()
        assert SECRET not in ok.stdout + ok.stderr + untrusted.stdout + untrusted.stderr
        plain = _run({**env, "BERTCTR_REDIS_URL": f"redis://127.0.0.1:{port}/0"}, "stats")
        assert plain.returncode != 0  # TLS only: a plaintext client gets nowhere
    finally:
        stop_process(proc)
