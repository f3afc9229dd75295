"""Decode throughput: the pydantic path against the msgspec path, in one process.

Decodes the same simulator payloads (impressions and clicks as producers
publish them, keyed, malformed ones included) with ``decode(..., fast=False)``
(pydantic's ``model_validate_json``, the path before issue 24) and with the
default path (msgspec validates, the pydantic event is built without
re-validating). The two take turns over ``--rounds`` rounds and the best
round of each counts, so load from other processes weighs on both alike.
Prints both rates and their ratio; the last line is one JSON object.

Run: ``.venv/bin/python bench/bench_decode.py [--events 20000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import time

from schemas import Click, Impression
from schemas.topics import IMPRESSIONS
from simulator import SimConfig, Simulator
from simulator.messages import SimMessage
from streams.kafka.decode import DecodeError, decode


def _run(messages: list[SimMessage], *, fast: bool) -> tuple[float, int]:
    """Seconds to decode every message once, and how many were accepted."""
    accepted = 0
    t0 = time.perf_counter()
    for m in messages:
        try:
            decode(
                Impression if m.topic == IMPRESSIONS else Click,
                m.value,
                m.key,
                keyed=True,
                fast=fast,
            )
        except DecodeError:
            continue
        accepted += 1
    return time.perf_counter() - t0, accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    messages = list(Simulator(SimConfig(seed=args.seed)).messages(args.events))
    best = {"pydantic": float("inf"), "msgspec": float("inf")}
    counts: dict[str, int] = {}
    for _ in range(args.rounds):
        for name in best:
            seconds, accepted = _run(messages, fast=name == "msgspec")
            best[name] = min(best[name], seconds)
            counts[name] = accepted
    assert counts["pydantic"] == counts["msgspec"], counts
    rates = {name: len(messages) / seconds for name, seconds in best.items()}
    ratio = rates["msgspec"] / rates["pydantic"]
    for name, rate in rates.items():
        print(f"{name:9s} {rate:12,.0f} events/s  ({1e6 / rate:.2f} us/event)")
    print(f"ratio     {ratio:12.2f}x  ({len(messages)} messages, {counts['msgspec']} accepted)")
    print(
        json.dumps(
            {
                "events": len(messages),
                "accepted": counts["msgspec"],
                "rounds": args.rounds,
                "pydantic_events_per_s": round(rates["pydantic"]),
                "msgspec_events_per_s": round(rates["msgspec"]),
                "ratio": round(ratio, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
