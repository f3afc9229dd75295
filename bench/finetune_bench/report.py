"""What the bench prints: one table per seed, the mean over seeds, and the goals.

The per-seed figures are :func:`bench_finetune.run_seed`'s dictionary; the
summary (:func:`summarise`) is part of the JSON line the script ends with.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from finetune_bench.world import CONTROLS, POSITIVE

__all__ = ["ROWS", "print_seed", "print_summary", "summarise"]

#: (label, arm) of each row of the tables
ROWS = (
    ("no fine-tuning (PCA head)", "no_finetune"),
    ("loop (gate, then duel)", "loop"),
    ("fine-tuned, duel forced", "forced"),
    ("true attributes (ceiling)", "true_attributes"),
    ("attributes head, dueled", POSITIVE),
)


def _decision(d: dict[str, Any] | None) -> str:
    if d is None:
        return ""
    at = f" at pair {d['decided_at']}" if d.get("decided_at") is not None else ""
    return f"{d['decision']} (n={d['n']}{at})"


def print_seed(r: dict[str, Any]) -> None:
    job = r["job"]
    hold = job["holdout"]
    print(
        f"{'after the fine-tuning point':<28} {'NE':>7} {'gap':>7} {'lift':>7} "
        f"{'of oracle':>9} {'cold':>7} {'of oracle':>9}  duel"
    )
    for label, key in ROWS:
        a = r["arms"][key]
        cold = (
            f"{a['cold_lift']:>7.3f} {a['cold_lift_share']:>9.0%}"
            if "cold_lift" in a
            else f"{'':>7} {'':>9}"
        )
        print(
            f"{label:<28} {a['ne']:>7.4f} {a['ne_gap']:>+7.4f} {a['lift']:>7.3f} "
            f"{a['lift_share']:>9.0%} {cold}  {_decision(a.get('duel'))}"
        )
    oracle_cold = r.get("oracle_cold_lift")
    print(
        f"{'oracle':<28} {r['oracle_ne_after']:>7.4f} {'':>7} {r['oracle_lift']:>7.3f} {'':>9} "
        + (f"{oracle_cold:>7.3f}" if oracle_cold is not None else "")
    )
    print(
        f"job: {'PUBLISHED' if job['published'] else 'refused'}; {job['examples']} examples, "
        f"{job['clicks']} clicks, {job['images']} images, {job['groups']} groups; held-out gain "
        f"{hold['improvement']:+.5f} +- {hold['improvement_se']:.5f} nats over "
        f"{hold['reference']} (best epoch {job['best_epoch']}); "
        f"{job['seconds']['total']:.1f}s ({job['seconds_per_10k']:.1f}s per 10k), peak RSS "
        f"{job['peak_rss_bytes'] / 2**20:.0f} MiB (+{job['peak_rss_increase_bytes'] / 2**20:.0f})"
    )
    print(f"     {job['reason']}")
    print(
        "controls: "
        + "; ".join(
            f"{name} {_decision(c['duel'])}, NE {c['ne']:.4f}" for name, c in r["controls"].items()
        )
    )


def summarise(results: Sequence[dict[str, Any]], visual_taste: float) -> dict[str, Any]:
    def mean(f: Callable[[dict[str, Any]], float]) -> float:
        return statistics.fmean(f(r) for r in results)

    arms = {
        key: {
            figure: statistics.fmean(r["arms"][key][figure] for r in results)
            for figure in ("ne_gap", "lift_share")
        }
        for _, key in ROWS
    }

    def decisions(name: str) -> list[str]:
        return [r["controls"][name]["duel"]["decision"] for r in results]

    pca, loop, truth = (arms[k]["lift_share"] for k in ("no_finetune", "loop", "true_attributes"))
    closed = (loop - pca) / (truth - pca) if truth != pca else float("nan")
    cold_closed = [gap_closed(r, "cold_lift") for r in results if "cold_lift" in r["arms"]["loop"]]
    duels = [r["arms"]["forced"]["duel"] for r in results] + [
        r["controls"][name]["duel"] for r in results for name in (*CONTROLS, POSITIVE)
    ]
    decided = [int(d["n"]) for d in duels if d["decision"] != "undecided"]
    # the most pairs any duel needed; None while one of them never decided
    pairs_max = max(decided) if decided and len(decided) == len(duels) else None
    return {
        "seeds": [r["seed"] for r in results],
        "world": results[0].get("world", "small"),
        "published_seeds": sum(r["job"]["published"] for r in results),
        "promoted_seeds": sum(
            r["job"]["published"] and r["arms"]["forced"]["duel"]["decision"] == "promote"
            for r in results
        ),
        "cold_start_gap_closed": cold_closed,
        "cold_start_gap_closed_mean": statistics.fmean(cold_closed) if cold_closed else None,
        "pairs_to_decision_max": pairs_max,
        "paired_difference_std": [d.get("std") for d in duels],
        "corrupted_retired_seeds": sum(
            all(r["controls"][n]["duel"]["decision"] == "retire" for n in ("shuffled", "zero"))
            for r in results
        ),
        "identical_promoted_seeds": sum(
            r["controls"]["identical"]["duel"]["decision"] == "promote" for r in results
        ),
        "visual_taste": visual_taste,
        "mean": arms,
        "published": sum(r["job"]["published"] for r in results),
        "promoted": sum(r["arms"]["forced"]["duel"]["decision"] == "promote" for r in results),
        "promoted_and_published": sum(
            r["job"]["published"] and r["arms"]["forced"]["duel"]["decision"] == "promote"
            for r in results
        ),
        "controls": {name: decisions(name) for name in (*CONTROLS, POSITIVE)},
        "lift_gap_closed": closed,
        "job_seconds_per_10k": mean(lambda r: r["job"]["seconds_per_10k"]),
        "job_peak_rss_bytes": max(r["job"]["peak_rss_bytes"] for r in results),
        "goals": {
            "loop_lift_at_least_true_attributes": loop >= truth,
            "loop_ne_gap_below_0.018": arms["loop"]["ne_gap"] < 0.018,
            "closes_half_the_lift_gap": closed >= 0.5,
            "publishes_and_promotes_5_of_6": 6
            * sum(
                r["job"]["published"] and r["arms"]["forced"]["duel"]["decision"] == "promote"
                for r in results
            )
            >= 5 * len(results),
            "closes_half_the_cold_start_gap": bool(cold_closed)
            and statistics.fmean(cold_closed) >= 0.5,
            "decides_within_100k_pairs": pairs_max is not None and pairs_max <= 100_000,
            "corrupted_never_promoted": all(
                d != "promote" for n in ("shuffled", "zero") for d in decisions(n)
            ),
            "identical_never_promoted": all(d != "promote" for d in decisions("identical")),
        },
    }


def gap_closed(r: dict[str, Any], figure: str) -> float:
    """Share of the PCA-to-true-attributes gap in ``figure`` that the loop's champion closed."""
    arms = r["arms"]
    pca, loop, truth = (arms[k][figure] for k in ("no_finetune", "loop", "true_attributes"))
    return float((loop - pca) / (truth - pca)) if truth != pca else float("nan")


def print_summary(s: dict[str, Any]) -> None:
    n = len(s["seeds"])
    print(f"\nmean over {n} seed(s) {s['seeds']}, visual_taste {s['visual_taste']}:")
    print(f"{'':<28} {'NE gap':>7} {'of oracle lift':>15}")
    for label, key in ROWS:
        a = s["mean"][key]
        print(f"{label:<28} {a['ne_gap']:>+7.4f} {a['lift_share']:>15.1%}")
    print(
        f"job published {s['published']}/{n}; the fine-tuned head was promoted {s['promoted']}/{n} "
        f"(both: {s['promoted_and_published']}); lift gap PCA -> true attributes closed by the "
        f"loop: {s['lift_gap_closed']:.0%}"
    )
    print("controls: " + "; ".join(f"{k} {v}" for k, v in s["controls"].items()))
    print(
        f"job cost: {s['job_seconds_per_10k']:.1f}s per 10k examples, peak RSS "
        f"{s['job_peak_rss_bytes'] / 2**20:.0f} MiB"
    )
    if s["cold_start_gap_closed_mean"] is not None:
        print(
            "cold start: gap PCA -> true attributes closed by the loop per seed "
            + ", ".join(f"{c:.0%}" for c in s["cold_start_gap_closed"])
            + f" (mean {s['cold_start_gap_closed_mean']:.0%})"
        )
    print(
        f"published {s['published_seeds']}, promoted {s['promoted_seeds']}, corrupted retired "
        f"{s['corrupted_retired_seeds']}, identical promoted {s['identical_promoted_seeds']} "
        f"(of {n}); most pairs to a decision: {s['pairs_to_decision_max']}"
    )
    print("goals: " + ", ".join(f"{k}={v}" for k, v in s["goals"].items()))
