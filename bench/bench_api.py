"""``POST /score`` latency: 100 candidates, embeddings cached, at a fixed request rate.

Everything real: ``bertctr encoder serve`` (Triton) with the demo's heads,
Redis holding the embedding cache, a model learned with embeddings on the
simulator's traffic and saved through the model store, and ``bertctr api``
as a separate process. Requests are sent **open loop** at a fixed rate
(each one at its scheduled time, whether or not the previous one has
answered), and latency is measured from the scheduled time, so a stall
shows up in the tail instead of being hidden by a client that waits
(coordinated omission).

Baselines in the same run, on the same server and client:

* ``GET /healthz`` at the same rate: the floor of this HTTP stack and client;
* the scorer called in-process (no HTTP): what the model and the cache cost;
* the same, unoptimised (the learner's own FTRL predictions, every embedding
  read from Redis): what the serving view and the in-process memo buy.

Goal (issue 12): p99 under 25 ms for 100 cached candidates on this machine.

Concurrency (issue 23): **closed loop**, N clients each sending its next
request as soon as the last is answered, against ``bertctr api --workers W``
for each W asked: p50/p99 and requests/s at 1 and at 20 clients, in the same
run and on the same server. Goal: p99 under 50 ms at 20 clients.
The clients are one asyncio process (aiohttp) that shares the cores with the
server; each row says how much CPU it took per request (``client_cpu_ms``).
``--baseline-tree DIR`` (a checkout of an older commit, e.g. ``git archive
REF | tar -x -C DIR``; repeatable) measures the same closed loop, by the same
client in the same run, against ``bertctr api`` run from that tree: before
and after, with the JSON keys of the 20-client figures prefixed by its label.
The servers of one worker count run side by side and take turns, in slices
(``--rounds``, each round in another order), so a load that comes and goes
on the machine meanwhile weighs on each alike.
The last stdout line is one JSON object.

Run: ``.venv/bin/python bench/bench_api.py [--rates 20 50] [--seconds 20] [--candidates 100]
[--clients 1 20] [--api-workers 1 2] [--baseline-tree [LABEL=]DIR ...]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import json
import os
import pstats
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import redis

from api.contracts import ScoreRequest
from api.scoring import CandidateScorer
from api.serving import ModelWatcher
from api.state import EMBEDDING_MEMO
from bertctr.demo import fit_heads
from bertctr.demo_config import DemoConfig
from bertctr.evaluation import catalogue_lookup
from bertctr.harness.api import ApiServer
from bertctr.harness.encoders import start_encoder_server
from online_ctr.frozen import per_candidate_predictor
from online_ctr.learner import Learner
from online_ctr.models.registry import make_model
from online_ctr.store import FileModelStore
from schemas.settings import Settings
from simulator import SimConfig, Simulator
from simulator.labelled import labelled_stream
from wiring.embedding import embedder_from_settings

KEY = "bench-api-key"


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    xs = np.array(samples_ms)
    return {
        "p50_ms": round(float(np.percentile(xs, 50)), 2),
        "p99_ms": round(float(np.percentile(xs, 99)), 2),
        "max_ms": round(float(xs.max()), 2),
        "n": len(samples_ms),
    }


def request_body(sim: Simulator, n: int, seed: int) -> dict[str, Any]:
    """``n`` candidates drawn from the catalogue, for one segment."""
    rng = random.Random(seed)
    entries = [rng.choice(sim.catalogue) for _ in range(n)]
    return {
        "segment": {"device": "mobile", "geo": "DE", "taste": "t1"},
        "candidates": [
            {
                "item_id": e.item_id,
                "image_id": e.image_id,
                "variant": e.variant,
                "title": e.title,
                "position": i % 10,
            }
            for i, e in enumerate(entries)
        ],
    }


async def open_loop(
    url: str, method: str, body: Any, rate: float, seconds: float
) -> tuple[list[float], int]:
    """Latencies (ms, from each request's scheduled time) and the count of non-200 answers.

    aiohttp, not httpx: the client shares these two cores with the server,
    and httpx's own overhead (several ms per request here) would be
    measured as the server's.
    """
    latencies: list[float] = []
    failures = 0
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=10.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def one(scheduled: float) -> None:
            nonlocal failures
            try:
                async with client.request(method, url, data=payload, headers=headers) as resp:
                    await resp.read()
                    ok = resp.status == 200
            except (aiohttp.ClientError, TimeoutError):  # overloaded: dropped, timed out
                ok = False
            latencies.append((time.perf_counter() - scheduled) * 1000.0)
            failures += not ok

        start = time.perf_counter() + 0.1
        tasks = []
        for i in range(int(rate * seconds)):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
    return latencies, failures


@dataclasses.dataclass
class ClosedLoop:
    """What ``clients`` back-to-back senders saw, over one or more slices of time."""

    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    failed: int = 0
    seconds: float = 0.0
    client_cpu_s: float = 0.0

    def row(self) -> dict[str, Any]:
        n = max(len(self.latencies_ms), 1)
        return {
            **percentiles(self.latencies_ms),
            "failed": self.failed,
            "requests_per_s": round(len(self.latencies_ms) / self.seconds, 1),
            "client_cpu_ms": round(self.client_cpu_s * 1000.0 / n, 2),
        }


async def closed_loop(url: str, body: Any, clients: int, seconds: float, into: ClosedLoop) -> None:
    """``clients`` back-to-back senders for ``seconds``; what they saw is added to ``into``."""
    payload = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=10.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        deadline = time.perf_counter() + seconds

        async def sender() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    async with client.post(url, data=payload, headers=headers) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                into.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
                into.failed += not ok

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(sender() for _ in range(clients)))
        into.seconds += time.perf_counter() - started
        into.client_cpu_s += time.process_time() - cpu


async def in_process(
    settings: Settings,
    store: FileModelStore,
    body: dict[str, Any],
    n: int,
    profile: bool,
    optimised: bool = True,
) -> list[float]:
    """The scorer without HTTP: model, features, cache reads and the reply's JSON.

    ``optimised=False`` is the first version of the scorer, for the same-run
    comparison: the learner's own predictions, one candidate at a time
    (weights derived from FTRL's state per feature per call), and every
    embedding read from Redis.
    """
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(settings.redis_url)
    watcher = ModelWatcher(store)
    watcher.refresh()
    if not optimised:
        assert watcher.current is not None
        slow = per_candidate_predictor(watcher.current.learner)
        watcher.current = dataclasses.replace(watcher.current, predict_many=slow)
    memo = EMBEDDING_MEMO if optimised else 0
    embedder = embedder_from_settings(settings, client, memo_size=memo)
    scorer = CandidateScorer(watcher, embedder, 1000)
    request = ScoreRequest.model_validate(body)
    await scorer.score(request)  # warm: served version and tag
    out = []
    profiler = cProfile.Profile() if profile else None
    for _ in range(n):
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        (await scorer.score(request)).json()
        if profiler is not None:
            profiler.disable()
        out.append((time.perf_counter() - t0) * 1000.0)
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    await embedder.close()
    await client.aclose()
    return out


def train(sim: Simulator, settings: Settings, events: int) -> Learner:
    """A model learned with embeddings (which fills the embedding cache in Redis)."""
    lookup = catalogue_lookup(sim, settings)
    assert lookup is not None
    learner = Learner(make_model(with_content=True))
    for e in labelled_stream(sim, events):
        image, title = lookup(e.impression)
        learner.predict_then_learn(e.labelled(), image, title)
    return learner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[20.0, 50.0],
        help="request rates (per second) to measure; the first is the headline",
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--events", type=int, default=20_000, help="examples the model learns")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the in-process scorer and print it"
    )
    parser.add_argument("--no-server", action="store_true", help="in-process scorer only")
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[1, 20], help="closed-loop client counts"
    )
    parser.add_argument(
        "--api-workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="bertctr api --workers values to measure the closed loop against",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="closed loop: slices each row's seconds are cut into, servers taking turns",
    )
    parser.add_argument(
        "--baseline-tree",
        action="append",
        default=[],
        metavar="[LABEL=]DIR",
        help="a checkout of an older commit: its bertctr api is measured too (closed loop); "
        "repeat for more (labelled 'baseline', then by directory name, unless LABEL= is given)",
    )
    args = parser.parse_args()
    baseline_trees(args.baseline_tree)  # refuse a wrong directory before the long set-up

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    prefix = f"bench:api:{uuid.uuid4().hex[:8]}:"
    cfg = DemoConfig(seed=args.seed)
    sim = Simulator(SimConfig(seed=args.seed, impressions_per_s=cfg.impressions_per_s))
    sim.render_catalogue(tmp / "images")
    heads = fit_heads(tmp, sim.catalogue, cfg, lambda line: print(line, flush=True))
    encoders = start_encoder_server(heads, log_dir=tmp)
    env = {
        "BERTCTR_REDIS_URL": args.redis_url,
        "BERTCTR_REDIS_PREFIX": prefix,
        "BERTCTR_TRITON_URL": encoders.grpc_url,
        "BERTCTR_IMAGE_DIR": str(tmp / "images"),
        "BERTCTR_CHECKPOINT_DIR": str(tmp / "ckpt"),
        "BERTCTR_CHECKPOINT_KEY": KEY,
        # the catalogue is embedded in one burst on 2 busy cores: be patient
        "BERTCTR_TRITON_TIMEOUT_S": "120",
        "BERTCTR_BREAKER_FAILURES": "50",
    }
    settings = Settings.from_env(env)
    try:
        t0 = time.perf_counter()
        learner = train(sim, settings, args.events)
        store = FileModelStore(tmp / "ckpt", KEY.encode())
        store.save(learner, {}, {"model": "ftrl"})
        print(f"learned {learner.learned} examples in {time.perf_counter() - t0:.0f}s", flush=True)
        body = request_body(sim, args.candidates, args.seed)
        report = {} if args.no_server else run_server(env, tmp, body, args)
        report["in_process_score"] = percentiles(
            asyncio.run(in_process(settings, store, body, 200, args.profile))
        )
        report["in_process_unoptimised"] = percentiles(
            asyncio.run(in_process(settings, store, body, 200, False, optimised=False))
        )
        if not args.no_server:
            print_report(report, args)
        else:
            print(
                json.dumps({k: report[k] for k in ("in_process_score", "in_process_unoptimised")})
            )
    finally:
        encoders.stop()
        clean(args.redis_url, prefix)


def baseline_trees(specs: list[str]) -> list[tuple[str, str]]:
    """(label, absolute directory) of each ``--baseline-tree [LABEL=]DIR``."""
    out = []
    for i, spec in enumerate(specs):
        label, _, tree = spec.rpartition("=")
        path = Path(tree).resolve()
        if not (path / "api" / "app.py").is_file():
            raise SystemExit(f"--baseline-tree {spec}: no checkout of this project there")
        out.append((label or ("baseline" if i == 0 else path.name), str(path)))
    return out


def run_server(
    env: dict[str, str], tmp: Path, body: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    with ApiServer({**os.environ, **env}, tmp / "api.log") as api:
        status, warm = api.request("POST", "/score", body)
        assert status == 200, warm
        errors = [s["embedding"] for s in warm["scores"] if s["embedding"] != "ok"]
        assert not errors, f"candidates without embeddings: {errors[:3]}"
        report: dict[str, Any] = {"image_encoder": warm["model"]["image_encoder"], "rates": {}}
        for rate in args.rates:
            row = {}
            for name, method, path, payload in (
                ("healthz", "GET", "/healthz", None),
                ("score", "POST", "/score", body),
            ):
                lat, failed = asyncio.run(
                    open_loop(api.url + path, method, payload, rate, args.seconds)
                )
                row[name] = {**percentiles(lat), "failed": failed}
            report["rates"][rate] = row
    servers = [("", {**os.environ, **env})]
    for label, tree in baseline_trees(args.baseline_tree):
        # the older tree's packages first, and not the current directory's (-m puts it first)
        servers.append((label, {**os.environ, **env, "PYTHONPATH": tree, "PYTHONSAFEPATH": "1"}))
    report["concurrency"] = {}
    for workers in args.api_workers:
        with contextlib.ExitStack() as stack:
            apis = {}
            for name, server_env in servers:
                log = tmp / f"api-{name or 'current'}-{workers}.log"
                api = stack.enter_context(ApiServer(server_env, log, workers=workers))
                for _ in range(workers * 4):  # warm every process: model load, memo
                    status, _ = api.request("POST", "/score", body)
                    assert status == 200
                apis[name] = api
            for clients in args.clients:
                # every server in turn, a slice at a time, each round in another order:
                # whatever else loads the machine meanwhile is shared out alike
                seen = {name: ClosedLoop() for name in apis}
                for i in range(args.rounds):
                    names = list(apis)[i % len(apis) :] + list(apis)[: i % len(apis)]
                    for name in names:
                        url = apis[name].url + "/score"
                        asyncio.run(
                            closed_loop(url, body, clients, args.seconds / args.rounds, seen[name])
                        )
                for name, loop in seen.items():
                    report["concurrency"][(name, workers, clients)] = loop.row()
    return report


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\n{args.candidates} candidates, open loop, {args.seconds:.0f}s per row")
    print(f"{'':<34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'n':>6}")

    def line(name: str, r: dict[str, Any]) -> None:
        print(f"{name:<34} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8} {r['n']:>6}")

    for rate, row in report["rates"].items():
        line(f"GET /healthz at {rate:g}/s (floor)", row["healthz"])
        line(f"POST /score at {rate:g}/s", row["score"])
    print(f"\nclosed loop, POST /score, {args.seconds:.0f}s per row")
    header = f"{'':<48} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'n':>6} {'req/s':>8}"
    print(f"{header} {'client CPU ms/req':>18}")
    for (server, workers, clients), r in report["concurrency"].items():
        name = f"{server + ': ' if server else ''}{workers} API worker(s), {clients} client(s)"
        print(
            f"{name:<48} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8} {r['n']:>6} "
            f"{r['requests_per_s']:>8} {r['client_cpu_ms']:>18}"
        )
    line("scorer in process", report["in_process_score"])
    line("scorer in process, unoptimised", report["in_process_unoptimised"])
    main_rate = args.rates[0]
    score = report["rates"][main_rate]["score"]
    floor = report["rates"][main_rate]["healthz"]
    summary = {
        "candidates": args.candidates,
        "rate_per_s": main_rate,
        "score_p50_ms": score["p50_ms"],
        "score_p99_ms": score["p99_ms"],
        "score_failed": score["failed"],
        "healthz_p50_ms": floor["p50_ms"],
        "healthz_p99_ms": floor["p99_ms"],
        "score_p99_ms_by_rate": {
            f"{r:g}": row["score"]["p99_ms"] for r, row in report["rates"].items()
        },
        "in_process_p50_ms": report["in_process_score"]["p50_ms"],
        "in_process_p99_ms": report["in_process_score"]["p99_ms"],
        "in_process_unoptimised_p50_ms": report["in_process_unoptimised"]["p50_ms"],
        "in_process_unoptimised_p99_ms": report["in_process_unoptimised"]["p99_ms"],
        "goal_p99_ms": 25.0,
        "goal_met": score["p99_ms"] < 25.0,
    }
    one, many = min(args.clients), max(args.clients)
    for server in dict.fromkeys(s for s, _, _ in report["concurrency"]):
        conc = {(w, c): r for (s, w, c), r in report["concurrency"].items() if s == server}
        best = min(args.api_workers, key=lambda w: conc[(w, many)]["p99_ms"])
        key = f"{server}_" if server else ""
        summary.update(
            {
                f"{key}p50_ms_1_client": conc[(best, one)]["p50_ms"],
                f"{key}p99_ms_1_client": conc[(best, one)]["p99_ms"],
                f"{key}p99_ms_{many}_clients": conc[(best, many)]["p99_ms"],
                f"{key}requests_per_s_{many}_clients": conc[(best, many)]["requests_per_s"],
                f"{key}api_workers": best,
                f"{key}p99_ms_by_workers_and_clients": {
                    f"{w}x{c}": r["p99_ms"] for (w, c), r in conc.items()
                },
                f"{key}requests_per_s_by_workers_and_clients": {
                    f"{w}x{c}": r["requests_per_s"] for (w, c), r in conc.items()
                },
                f"{key}client_cpu_ms_per_request_by_workers_and_clients": {
                    f"{w}x{c}": r["client_cpu_ms"] for (w, c), r in conc.items()
                },
            }
        )
        if not server:
            summary["concurrency_goal_p99_ms"] = 50.0
            summary["concurrency_goal_met"] = conc[(best, many)]["p99_ms"] < 50.0
    print(json.dumps(summary))


def clean(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    finally:
        client.close()


if __name__ == "__main__":
    main()
