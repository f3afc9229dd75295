"""The simulator: impressions, clicks and the mess real producers make.

Messages come out in publish order (simulated time). Clicks follow their
impression after a heavy-tailed delay (lognormal body, a share from a long
tail past the attribution window); a share of events is duplicated, some
clicks are published before their impression, and a few messages are
malformed. Everything is drawn from one seeded generator, so a seed gives a
byte-identical stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from schemas.events import Click, Impression
from simulator.audience import draw_preferences, segment_weights, sigmoid, true_logit
from simulator.catalogue import CatalogueEntry, build_catalogue
from simulator.config import SimConfig
from simulator.render import write_catalogue

Topic = Literal["impressions", "clicks"]
Kind = Literal["impression", "click", "duplicate", "malformed"]


@dataclass(frozen=True)
class SimMessage:
    """One message as a producer would publish it."""

    topic: Topic
    key: bytes | None
    value: bytes
    ts: float
    kind: Kind


@dataclass(frozen=True)
class RankingRequest:
    """A held-out request: which variant of ``item_id`` to show this segment?"""

    segment: dict[str, str]
    item_id: str
    candidates: list[str]
    position: int
    ts: float


class Simulator:
    """Seeded traffic generator with known click probabilities."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        rng = np.random.default_rng(self.config.seed)
        self.catalogue = build_catalogue(rng, self.config.n_items, self.config.variants_per_item)
        self.preferences = draw_preferences(rng)
        self.segments, self.segment_p = segment_weights(rng)
        self._rng = rng
        self._by_key = {(e.item_id, e.variant): e for e in self.catalogue}
        self._items = sorted({e.item_id for e in self.catalogue})
        self._next = 0
        self._clock = self.config.start_ts
        self.true_p: dict[str, float] = {}
        self.expected_counts: dict[str, int] = {
            "impressions": 0,
            "clicks": 0,
            "late_clicks": 0,
            "duplicates": 0,
            "malformed": 0,
            "out_of_order": 0,
        }

    def render_catalogue(self, image_dir: Path) -> None:
        write_catalogue(self.catalogue, image_dir, self.config.image_size, self.config.seed)

    def entry(self, item_id: str, variant: str) -> CatalogueEntry:
        return self._by_key[(item_id, variant)]

    def true_ctr(
        self, segment: dict[str, str], item_id: str, variant: str, position: int, ts: float
    ) -> float:
        c = self.config
        return sigmoid(
            true_logit(
                self.preferences,
                c.base_logit,
                c.position_decay,
                segment,
                self.entry(item_id, variant),
                position,
            )
        )

    def _click_delay(self, rng: np.random.Generator) -> float:
        if rng.random() < self.config.late_click_share:
            return float(self.config.attribution_window_s * rng.uniform(1.05, 2.0))
        return float(min(rng.lognormal(mean=3.0, sigma=1.4), self.config.attribution_window_s))

    def messages(self, n_impressions: int) -> Iterator[SimMessage]:
        """The next ``n_impressions`` impressions with their clicks and noise."""
        c, rng = self.config, self._rng
        out: list[tuple[float, int, SimMessage]] = []
        seq = 0

        def emit(ts: float, msg: SimMessage) -> None:
            nonlocal seq
            out.append((ts, seq, msg))
            seq += 1

        for _ in range(n_impressions):
            n = self._next
            self._next += 1
            self._clock += float(rng.exponential(1.0 / c.impressions_per_s))
            segment = self.segments[int(rng.choice(len(self.segments), p=self.segment_p))]
            item = self._items[int(rng.integers(len(self._items)))]
            variant = f"v{int(rng.integers(c.variants_per_item))}"
            entry = self.entry(item, variant)
            position = int(min(rng.geometric(0.35) - 1, 20))
            iid = f"s{c.seed}-imp-{n}"
            imp = Impression(
                event_id=f"s{c.seed}-ev-{n}",
                impression_id=iid,
                ts=round(self._clock, 3),
                item_id=item,
                image_id=entry.image_id,
                variant=variant,
                title=entry.title,
                position=position,
                segment=segment,
                user_id=f"u{int(rng.integers(5000))}",
            )
            p = self.true_ctr(segment, item, variant, position, imp.ts)
            self.true_p[iid] = p
            self.expected_counts["impressions"] += 1
            value = imp.model_dump_json().encode()
            key = iid.encode()
            emit(imp.ts, SimMessage("impressions", key, value, imp.ts, "impression"))
            if rng.random() < c.duplicate_rate:
                emit(
                    imp.ts + float(rng.uniform(0, 5)),
                    SimMessage("impressions", key, value, imp.ts, "duplicate"),
                )
                self.expected_counts["duplicates"] += 1
            if rng.random() < p:
                self.expected_counts["clicks"] += 1
                delay = self._click_delay(rng)
                if delay > c.attribution_window_s:
                    self.expected_counts["late_clicks"] += 1
                click = Click(
                    event_id=f"s{c.seed}-click-{n}", impression_id=iid, ts=round(imp.ts + delay, 3)
                )
                cvalue = click.model_dump_json().encode()
                publish_at = click.ts
                if delay <= c.attribution_window_s and rng.random() < c.out_of_order_rate:
                    publish_at = imp.ts - 0.5  # the click overtakes its impression
                    self.expected_counts["out_of_order"] += 1
                emit(publish_at, SimMessage("clicks", key, cvalue, click.ts, "click"))
                if rng.random() < c.duplicate_rate:
                    emit(
                        publish_at + float(rng.uniform(0, 5)),
                        SimMessage("clicks", key, cvalue, click.ts, "duplicate"),
                    )
                    self.expected_counts["duplicates"] += 1
            if rng.random() < c.malformed_rate:
                emit(imp.ts, self._malformed(imp, rng))
                self.expected_counts["malformed"] += 1
        out.sort(key=lambda t: (t[0], t[1]))
        for _, _, msg in out:
            yield msg

    def _malformed(self, imp: Impression, rng: np.random.Generator) -> SimMessage:
        kind = int(rng.integers(3))
        key = imp.impression_id.encode()
        if kind == 0:
            value = b"\x00not json{" + imp.impression_id.encode()
        elif kind == 1:
            data = imp.model_dump(mode="json")
            del data["segment"]
            value = json.dumps(data).encode()
        else:
            data = imp.model_dump(mode="json")
            data["position"] = -1
            value = json.dumps(data).encode()
        return SimMessage("impressions", key, value, imp.ts, "malformed")

    def ranking_requests(self, n: int, seed: int) -> list[RankingRequest]:
        """Held-out requests drawn from the traffic distribution (own generator)."""
        rng = np.random.default_rng(seed)
        reqs = []
        for _ in range(n):
            segment = self.segments[int(rng.choice(len(self.segments), p=self.segment_p))]
            item = self._items[int(rng.integers(len(self._items)))]
            candidates = [f"v{v}" for v in range(self.config.variants_per_item)]
            reqs.append(
                RankingRequest(
                    segment=dict(segment),
                    item_id=item,
                    candidates=candidates,
                    position=0,
                    ts=self._clock,
                )
            )
        return reqs

    def make_impression(self, req: RankingRequest, variant: str) -> Impression:
        entry = self.entry(req.item_id, variant)
        return Impression(
            event_id="rank",
            impression_id="rank",
            ts=req.ts,
            item_id=req.item_id,
            image_id=entry.image_id,
            variant=variant,
            title=entry.title,
            position=req.position,
            segment=req.segment,
        )
