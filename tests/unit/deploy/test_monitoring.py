"""Prometheus and Grafana for production stay true to the code and to docker-compose.yml.

No Docker engine runs here, so the files are checked instead: Prometheus
scrapes the compose services on the ports they listen on, Grafana is
provisioned with that Prometheus and the dashboard, and every metric a
panel queries is one the code declares (:mod:`schemas.metric_names`).
``tests/integration/api/test_metrics.py`` checks the same panels against the
exposition a real API and worker serve.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from api.app import create_app
from bertctr.cli import build_parser
from schemas.metric_names import API_METRICS, WORKER_METRICS
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy/grafana/dashboards/bertctr.json"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
RULES = ROOT / "deploy/prometheus/rules.yml"
PROVISIONING = ROOT / "deploy/grafana/provisioning"
METRIC = re.compile(r"\bbertctr_[a-z0-9_]+")
#: what the dashboard must show (issue 12), by the metric it is read from
MUST_SHOW = {
    "events/s (internal records left out)": "bertctr_join_events_total",
    "consumer lag": "bertctr_consumer_lag",
    "dead letters by reason": "bertctr_dead_letters_total",
    "labels by kind": "bertctr_labels_total",
    "model NE": "bertctr_model_ne",
    "model AUC": "bertctr_model_auc",
    "model calibration": "bertctr_model_calibration",
    "model log loss": "bertctr_model_logloss",
    "encoder champion/challenger": "bertctr_encoder_version",
    "Triton latency": "bertctr_triton_request_seconds_bucket",
    "Triton failures": "bertctr_triton_failures_total",
    "API latency": "bertctr_api_request_seconds_bucket",
    "workers up": "bertctr_workers",
    "impressions/s": "bertctr_impressions_total",
    "clicks/s": "bertctr_clicks_total",
    "CTR by segment": "bertctr_segment_clicks_total",
    "CTR by variant": "bertctr_variant_clicks_total",
}
#: what an alert rule must watch (issue 23), by a metric its expression reads
MUST_ALERT = {
    "lag": "bertctr_consumer_lag",
    "unhealthy workers": "bertctr_workers",
    "NE regression": "bertctr_model_ne",
    "stale model metrics": "bertctr_model_updated_timestamp_seconds",
    "stale health reports": "bertctr_worker_report_age_seconds",
}


def load_yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(ROOT / "docker-compose.yml")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return out


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]


def dashboard_metrics(dashboard: dict[str, Any]) -> set[str]:
    """Every ``bertctr_*`` series name a panel queries."""
    return {name for expr in expressions(dashboard) for name in METRIC.findall(expr)}


def test_every_panel_queries_metrics_the_code_declares(dashboard: dict[str, Any]) -> None:
    declared = {s for m in (*API_METRICS, *WORKER_METRICS) for s in m.series}
    used = dashboard_metrics(dashboard)
    assert used - declared == set()
    assert {name for name in MUST_SHOW.values() if name not in used} == set()


def test_the_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "bertctr" and dashboard["title"]
    every = panels(dashboard)
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in every:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), expr


def test_panels_use_the_datasource_variable_and_workers_filter(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "instance" in variables["worker"]["definition"]
    assert {o["value"] for o in variables["view"]["options"]} == {"live", "settled"}
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    per_process = {m.name for m in WORKER_METRICS if m.name.startswith("bertctr_worker_")}
    for expr in expressions(dashboard):
        if any(name in expr for name in per_process):
            assert 'instance=~"$worker"' in expr, expr
        if re.search(r"bertctr_(segment_|variant_)?(impressions|clicks)_total", expr):
            assert 'view="$view"' in expr, expr


def test_events_per_second_leave_internal_records_out(dashboard: dict[str, Any]) -> None:
    """Like the live page: offsets count join ticks and watermark records; events do not."""
    panel = {p["title"]: p for p in panels(dashboard)}["Events/s"]
    exprs = [t["expr"] for t in panel["targets"]]
    assert not any("bertctr_events_processed_total" in e for e in exprs), exprs
    assert any('bertctr_join_events_total{kind=~"impressions|clicks"}' in e for e in exprs)
    assert any("bertctr_labels_total" in e for e in exprs)


def test_ctr_panels_divide_clicks_by_impressions_of_the_same_scope(
    dashboard: dict[str, Any],
) -> None:
    by_title = {p["title"]: p for p in panels(dashboard)}
    for title, scope in (("CTR by segment", "segment"), ("CTR by variant", "variant")):
        panel = by_title[title]
        assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
        expr = panel["targets"][0]["expr"]
        clicks, impressions = expr.split(" / ")
        assert f"bertctr_{scope}_clicks_total" in clicks and f"by ({scope})" in clicks
        assert f"bertctr_{scope}_impressions_total" in impressions
        assert f"by ({scope})" in impressions


def test_api_latency_is_per_route_without_probes(dashboard: dict[str, Any]) -> None:
    latency = [e for e in expressions(dashboard) if "bertctr_api_request_seconds_bucket" in e]
    assert latency
    for expr in latency:
        assert "by (le, route)" in expr and "/metrics" in expr and "route!~" in expr


def test_alert_rules_watch_declared_metrics_and_are_loaded(compose: dict[str, Any]) -> None:
    rules = [r for g in load_yaml(RULES)["groups"] for r in g["rules"]]
    declared = {s for m in (*API_METRICS, *WORKER_METRICS) for s in m.series}
    used = {name for r in rules for name in METRIC.findall(r["expr"])}
    assert used - declared == set()
    assert {what for what, name in MUST_ALERT.items() if name not in used} == set()
    for rule in rules:
        assert rule["alert"].startswith("Bertctr") and rule["for"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        assert rule["expr"].count("(") == rule["expr"].count(")")
    assert "/etc/prometheus/rules.yml" in load_yaml(PROMETHEUS)["rule_files"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in mounts


def test_job_selectors_name_real_scrape_jobs(dashboard: dict[str, Any]) -> None:
    jobs = {job["job_name"] for job in load_yaml(PROMETHEUS)["scrape_configs"]}
    used = {j for expr in expressions(dashboard) for j in re.findall(r'job="([^"]+)"', expr)}
    assert used <= jobs


def _listens_on(compose: dict[str, Any], service: str) -> set[int]:
    """The ports a compose service's process listens on, from its command and settings."""
    spec = compose["services"][service]
    if service == "prometheus":
        return {9090}
    args = build_parser().parse_args(spec["command"][1:])
    if args.func.__name__ == "cmd_api":
        return {args.port}
    if args.func.__name__ == "cmd_encoder_serve":
        return {args.grpc_port, args.http_port, args.metrics_port}
    port = Settings(metrics_port=spec["environment"].get("BERTCTR_METRICS_PORT")).metrics_port
    return {port} if port is not None else set()


def test_prometheus_scrapes_the_compose_services_on_their_ports(compose: dict[str, Any]) -> None:
    config = load_yaml(PROMETHEUS)
    targets: dict[str, list[tuple[str, int]]] = {}
    for job in config["scrape_configs"]:
        found = [
            (host, int(port))
            for static in job.get("static_configs", [])
            for host, port in (t.split(":") for t in static["targets"])
        ]
        found += [
            (name, sd["port"]) for sd in job.get("dns_sd_configs", []) for name in sd["names"]
        ]
        assert found, job["job_name"]
        targets[job["job_name"]] = found
    for job, found in targets.items():
        for host, port in found:
            assert host in compose["services"], f"{job}: no service {host}"
            assert port in _listens_on(compose, host), f"{job}: {host} does not listen on {port}"
    assert {host for host, _ in targets["bertctr-api"]} == {"api"}
    assert {host for host, _ in targets["bertctr-worker"]} == {"worker"}
    # every worker replica: DNS service discovery, not one static address
    (worker_job,) = [j for j in config["scrape_configs"] if j["job_name"] == "bertctr-worker"]
    assert worker_job["dns_sd_configs"][0]["type"] == "A"
    paths = {job.get("metrics_path", "/metrics") for job in config["scrape_configs"]}
    assert paths == {"/metrics"}
    assert create_app(Settings()).url_path_for("metrics") == "/metrics"


def _mounted(compose: dict[str, Any], service: str, source: str) -> PurePosixPath:
    """Where ``service`` mounts the repository path ``source``."""
    for spec in compose["services"][service]["volumes"]:
        host, target, *_ = spec.split(":")
        if Path(ROOT / host).resolve() == (ROOT / source).resolve():
            return PurePosixPath(target)
    raise AssertionError(f"{service} does not mount {source}")


def test_prometheus_reads_this_configuration(compose: dict[str, Any]) -> None:
    command = compose["services"]["prometheus"]["command"]
    (config,) = [c.split("=", 1)[1] for c in command if c.startswith("--config.file=")]
    assert _mounted(compose, "prometheus", "deploy/prometheus/prometheus.yml") == PurePosixPath(
        config
    )


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
    compose: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    assert _mounted(compose, "grafana", "deploy/grafana/provisioning") == PurePosixPath(
        "/etc/grafana/provisioning"
    )
    (source,) = load_yaml(PROVISIONING / "datasources/prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    host, port = source["url"].removeprefix("http://").split(":")
    assert host == "prometheus" and int(port) in _listens_on(compose, "prometheus")
    uids = {p["datasource"]["uid"] for p in panels(dashboard) if "datasource" in p} | {
        t["datasource"]["uid"] for p in panels(dashboard) for t in p.get("targets", [])
    }
    # panels follow the datasource variable, whose default is the provisioned Prometheus
    assert uids == {"${datasource}"}
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert variable["current"]["value"] == source["uid"]
    (provider,) = load_yaml(PROVISIONING / "dashboards/bertctr.yml")["providers"]
    assert _mounted(compose, "grafana", "deploy/grafana/dashboards") == PurePosixPath(
        provider["options"]["path"]
    )
    home = compose["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert PurePosixPath(home) == PurePosixPath(provider["options"]["path"]) / DASHBOARD.name
