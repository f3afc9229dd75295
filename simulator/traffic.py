"""The simulator: impressions, clicks and the mess real producers make.

Impressions arrive as a Poisson process in simulated time; each is clicked
with its true probability (recorded in ``true_p``), after a heavy-tailed
delay. On top of that come delivery faults at configured rates: events sent
twice (same ``event_id``), clicks published before their lagging impression,
and malformed messages.

Randomness comes from independent generators spawned from the seed (one each
for the catalogue, the hidden preferences, the audience, the traffic and the
faults), so one seed gives a byte-identical stream, and changing a fault rate
leaves the impressions and clicks themselves unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from schemas.events import Click, Impression
from schemas.topics import CLICKS, IMPRESSIONS
from simulator.audience import Audience, Preferences, draw_preferences, sigmoid, true_logit
from simulator.catalogue import CatalogueEntry, build_catalogue
from simulator.config import SimConfig
from simulator.delays import ClickDelays
from simulator.faults import malformed_click, malformed_impression
from simulator.logging_policy import Allocator, LoggedChoice, ThompsonLogger
from simulator.messages import Kind, Outbox, RankingRequest, SimMessage, Topic
from simulator.render import write_catalogue
from simulator.shelf import Shelf

__all__ = ["COHORTS", "COUNT_KEYS", "MALFORMED_IMPRESSION_SHARE", "Cohort", "Simulator"]

log = logging.getLogger(__name__)

#: share of malformed messages sent to ``impressions`` (the rest go to ``clicks``)
MALFORMED_IMPRESSION_SHARE = 0.7
COUNT_KEYS = (
    "impressions",
    "clicks",
    "late_clicks",
    "duplicates",
    "duplicate_impressions",
    "duplicate_clicks",
    "malformed",
    "out_of_order",
)
#: which items held-out ranking requests ask about: ``all`` (every item,
#: uniformly: the small world's), ``warm`` (live items, drawn like traffic) or
#: ``cold`` (items launching next, never shown to anyone yet)
Cohort = Literal["all", "warm", "cold"]
COHORTS: tuple[Cohort, ...] = ("all", "warm", "cold")


class Simulator:
    """Seeded traffic generator with known click probabilities.

    >>> sim = Simulator(SimConfig(seed=1, n_items=5))
    >>> msgs = list(sim.messages(100))
    >>> sum(m.kind == "impression" for m in msgs), len(sim.true_p)
    (100, 100)
    """

    def __init__(
        self, config: SimConfig | None = None, *, allocator: Allocator | None = None
    ) -> None:
        self.config = config or SimConfig()
        c = self.config
        # spawned children are keyed by index: the first five are the small
        # world's whatever comes after them
        seeds = np.random.SeedSequence(c.seed).spawn(8)
        catalogue_rng, prefs_rng, audience_rng, traffic_rng, fault_rng, subtle_rng, shelf_rng = (
            np.random.default_rng(s) for s in seeds[:7]
        )
        self._logging_rng = np.random.default_rng(seeds[7])
        if c.logging_policy == "thompson" and allocator is None:
            raise ValueError(
                "logging_policy='thompson' needs an allocator: Simulator(config, "
                "allocator=online_ctr.ope.thompson_probabilities) or one of your own"
            )
        self._thompson = (
            ThompsonLogger(allocator, c.logging_refresh)
            if c.logging_policy == "thompson" and allocator is not None
            else None
        )
        #: every randomised impression with its context and outcome (``logging_policy``
        #: other than ``none``), for off-policy evaluation against the truth
        self.logged: list[LoggedChoice] = []
        if c.catalogue_seed is not None:
            shop = np.random.SeedSequence(c.catalogue_seed).spawn(7)
            catalogue_rng, subtle_rng, shelf_rng = (
                np.random.default_rng(shop[k]) for k in (0, 5, 6)
            )
        self.catalogue: list[CatalogueEntry] = build_catalogue(
            catalogue_rng, c.n_items, c.variants_per_item, subtle_rng if c.subtle_tastes else None
        )
        #: popularity and launches; ``None`` in the small world (uniform, all live)
        self.shelf: Shelf | None = (
            Shelf(c, shelf_rng) if c.popularity_zipf > 0 or c.launch_share > 0 else None
        )
        self.preferences: Preferences = draw_preferences(prefs_rng, c.visual_taste)
        self.audience = Audience(audience_rng, c.n_users)
        self._traffic_rng = traffic_rng
        self._fault_rng = fault_rng
        self._delays = ClickDelays(c)
        eligible = self._delays.share_within(min(c.reorder_max_s, c.attribution_window_s))
        self._reorder_p = min(1.0, c.out_of_order_rate / eligible) if eligible > 0 else 0.0
        if eligible > 0 and c.out_of_order_rate > eligible:
            log.warning(
                "out_of_order_rate %.3f exceeds the share of clicks within reorder_max_s "
                "(%.3f); fewer clicks will overtake their impression",
                c.out_of_order_rate,
                eligible,
            )
        self._by_key = {(e.item_id, e.variant): e for e in self.catalogue}
        self._items = list(dict.fromkeys(e.item_id for e in self.catalogue))
        self._item_index = {item: i for i, item in enumerate(self._items)}
        self._variants = [f"v{v}" for v in range(c.variants_per_item)]
        self._outbox = Outbox()
        self._generated = 0
        self._clock = c.start_ts
        self.true_p: dict[str, float] = {}
        self._counts = dict.fromkeys(COUNT_KEYS, 0)

    # -- ground truth -----------------------------------------------------------

    @property
    def segments(self) -> list[dict[str, str]]:
        """Every segment (device x geo x taste) the audience is drawn from."""
        return [dict(s) for s in self.audience.segments]

    @property
    def expected_counts(self) -> dict[str, int]:
        """What was generated so far (a copy).

        ``impressions`` and ``clicks`` are unique (a clicked impression counts
        once), ``late_clicks`` are clicks later than the attribution window,
        ``duplicates`` are re-sent events (split by topic in
        ``duplicate_impressions`` / ``duplicate_clicks``), ``out_of_order`` are
        clicks published before their impression.
        """
        return dict(self._counts)

    def entry(self, item_id: str, variant: str) -> CatalogueEntry:
        return self._by_key[(item_id, variant)]

    def true_ctr(
        self, segment: dict[str, str], item_id: str, variant: str, position: int, ts: float
    ) -> float:
        """The true click probability of this variant for this segment, position and time."""
        c = self.config
        logit = true_logit(
            self.preferences,
            c.base_logit,
            c.position_decay,
            segment,
            self.entry(item_id, variant),
            position,
            ts,
        )
        return sigmoid(logit)

    def render_catalogue(self, image_dir: Path) -> None:
        """Write ``<image_id>.png`` for every catalogue entry into ``image_dir``."""
        write_catalogue(self.catalogue, image_dir, self.config.image_size, self.render_seed)

    @property
    def render_seed(self) -> int:
        """The seed the catalogue's images are drawn with (the catalogue's own)."""
        c = self.config
        return c.seed if c.catalogue_seed is None else c.catalogue_seed

    # -- traffic ----------------------------------------------------------------

    def messages(self, n_impressions: int, *, flush: bool = True) -> Iterator[SimMessage]:
        """The next ``n_impressions`` impressions with their clicks and faults.

        Messages come in simulated publish order. With ``flush`` (the default)
        every click and retry of these impressions is released, however far
        in the future; with ``flush=False`` messages due after the last
        impression wait for the next call, so consecutive calls form one
        ordered stream (finish with ``messages(0)``). Generation is lazy:
        ``true_p`` and ``expected_counts`` grow as the iterator is consumed.
        """
        for _ in range(n_impressions):
            self._generate_one()
            yield from self._outbox.pop_until(self._clock)
        if flush:
            yield from self._outbox.drain()
        log.debug("generated %d impressions so far: %s", self._generated, self._counts)

    def _draw_item(self, rng: np.random.Generator, ts: float) -> str:
        if self.shelf is None:
            return self._items[int(rng.integers(len(self._items)))]
        return self._items[self.shelf.draw(rng, ts)]

    @property
    def catalogue_items(self) -> list[str]:
        """Every item id, in catalogue order (the launching items last)."""
        return list(self._items)

    def item_launch_ts(self, item_id: str) -> float | None:
        """When ``item_id`` went (or goes) live; ``None`` where every item always is."""
        if self.shelf is None:
            return None
        return self.shelf.launch_ts[self._item_index[item_id]]

    @property
    def clock(self) -> float:
        """The simulated time of the last impression generated."""
        return self._clock

    def _draw_position(self, rng: np.random.Generator) -> int:
        return int(min(rng.geometric(self.config.position_p) - 1, self.config.max_position))

    def _generate_one(self) -> None:
        c, rng, faults = self.config, self._traffic_rng, self._fault_rng
        n = self._generated
        self._generated += 1
        self._clock = round(self._clock + float(rng.exponential(1.0 / c.impressions_per_s)), 3)
        ts = self._clock
        user_id, segment = self.audience.draw(rng)
        item = self._draw_item(rng, ts)
        k = int(rng.integers(len(self._variants)))
        probabilities: tuple[float, ...] = ()
        if self._thompson is not None:
            seg_key = ",".join(f"{f}={v}" for f, v in sorted(segment.items()))
            k, probabilities = self._thompson.choose(
                self._logging_rng, seg_key, item, self._variants
            )
        elif c.logging_policy == "uniform":
            probabilities = (1.0 / len(self._variants),) * len(self._variants)
        variant = self._variants[k]
        propensity = probabilities[k] if probabilities else None
        position = self._draw_position(rng)
        entry = self.entry(item, variant)
        iid = f"s{c.seed}-imp-{n}"
        key = iid.encode()
        imp = Impression(
            event_id=f"s{c.seed}-ev-{n}",
            impression_id=iid,
            ts=ts,
            item_id=item,
            image_id=entry.image_id,
            variant=variant,
            title=entry.title,
            position=position,
            segment=segment,
            user_id=user_id,
            propensity=propensity,
        )
        p = self.true_ctr(segment, item, variant, position, ts)
        self.true_p[iid] = p
        self._counts["impressions"] += 1

        click: Click | None = None
        impression_at = ts
        if rng.random() < p:
            click = Click(
                event_id=f"s{c.seed}-clk-{n}",
                impression_id=iid,
                ts=round(ts + self._delays.draw(rng), 3),
            )
            delay = click.ts - ts  # what the join will measure
            self._counts["clicks"] += 1
            if delay > c.attribution_window_s:
                self._counts["late_clicks"] += 1
            if delay <= c.reorder_max_s and faults.random() < self._reorder_p:
                # the impression's producer lags: it publishes after the click
                impression_at = round(click.ts + float(faults.uniform(0.01, 1.0)), 3)
                self._counts["out_of_order"] += 1

        if probabilities:
            self._log_choice(imp, segment, probabilities, k, click is not None)
        self._publish(IMPRESSIONS, key, imp.model_dump_json().encode(), impression_at, n)
        if click is not None:
            self._publish(CLICKS, key, click.model_dump_json().encode(), click.ts, n)
        if faults.random() < c.malformed_rate:
            self._publish_malformed(imp, ts)

    def _log_choice(
        self,
        imp: Impression,
        segment: dict[str, str],
        probabilities: tuple[float, ...],
        k: int,
        clicked: bool,
    ) -> None:
        if self._thompson is not None:
            seg_key = ",".join(f"{f}={v}" for f, v in sorted(segment.items()))
            self._thompson.observe(seg_key, imp.item_id, k, clicked)
        self.logged.append(
            LoggedChoice(
                impression_id=imp.impression_id,
                segment=segment,
                item_id=imp.item_id,
                position=imp.position,
                ts=imp.ts,
                candidates=tuple(self._variants),
                probabilities=probabilities,
                shown=imp.variant,
                propensity=probabilities[k],
                clicked=clicked,
            )
        )

    def true_ctrs(self, choice: LoggedChoice) -> tuple[float, ...]:
        """The true click probability of each candidate in a logged choice's context."""
        return tuple(
            self.true_ctr(choice.segment, choice.item_id, v, choice.position, choice.ts)
            for v in choice.candidates
        )

    def policy_value(
        self,
        choices: Sequence[LoggedChoice],
        target: Callable[[LoggedChoice], Mapping[str, float]],
    ) -> float:
        """The true CTR ``target`` would have earned on these logged contexts.

        ``target`` gives each context's probability per candidate; the value
        is the mean over the contexts of ``sum_a target(a) * true_ctr(a)``:
        what an off-policy estimate on these impressions estimates.
        """
        if not choices:
            raise ValueError("no logged choices")
        total = 0.0
        for choice in choices:
            probs = target(choice)
            total += sum(
                probs.get(v, 0.0) * p
                for v, p in zip(choice.candidates, self.true_ctrs(choice), strict=True)
            )
        return total / len(choices)

    def _publish(self, topic: Topic, key: bytes, value: bytes, at: float, n: int) -> None:
        """Queue one valid event and, at ``duplicate_rate``, a producer retry of it."""
        kind: Kind = "impression" if topic == IMPRESSIONS else "click"
        self._outbox.put(SimMessage(topic, key, value, at, kind))
        faults = self._fault_rng
        if faults.random() < self.config.duplicate_rate:
            retry_at = round(at + float(faults.uniform(0.05, self.config.duplicate_max_gap_s)), 3)
            self._outbox.put(SimMessage(topic, key, value, retry_at, "duplicate"))
            self._counts["duplicates"] += 1
            self._counts[f"duplicate_{kind}s"] += 1

    def _publish_malformed(self, imp: Impression, ts: float) -> None:
        faults = self._fault_rng
        at = round(ts + float(faults.uniform(0.0, 1.0)), 3)
        topic: Topic
        if faults.random() < MALFORMED_IMPRESSION_SHARE:
            topic = IMPRESSIONS
            fault, value = malformed_impression(imp, faults)
        else:
            topic = CLICKS
            bad = Click(event_id=f"{imp.event_id}-bad", impression_id=imp.impression_id, ts=at)
            fault, value = malformed_click(bad, faults)
        # garbage from a misconfigured producer often comes without a key
        key = None if fault == "not_json" else imp.impression_id.encode()
        self._outbox.put(SimMessage(topic, key, value, at, "malformed"))
        self._counts["malformed"] += 1
        log.debug("malformed %s message (%s) for %s", topic, fault, imp.impression_id)

    # -- ranking ----------------------------------------------------------------

    def ranking_requests(self, n: int, seed: int, cohort: Cohort = "all") -> list[RankingRequest]:
        """Held-out requests at the current simulated time, for the items of ``cohort``.

        They use their own generator (``seed``), so asking for them does not
        change the traffic stream. ``cold`` asks about the next items to
        launch (up to a day's launches, by popularity): their images exist,
        no impression of them does, as for a product put on sale tomorrow.
        """
        rng = np.random.default_rng(seed)
        requests = []
        for _ in range(n):
            _, segment = self.audience.draw(rng)
            item = self._request_item(rng, cohort)
            requests.append(
                RankingRequest(
                    segment=segment,
                    item_id=item,
                    candidates=list(self._variants),
                    position=self._draw_position(rng),
                    ts=self._clock,
                )
            )
        return requests

    def _request_item(self, rng: np.random.Generator, cohort: Cohort) -> str:
        shelf = self.shelf
        if cohort == "all" or (shelf is None and cohort == "warm"):
            return self._items[int(rng.integers(len(self._items)))]
        if shelf is None:
            raise ValueError("no cold-start items: every item of this world is live from the start")
        if cohort == "warm":
            return self._items[shelf.draw(rng, self._clock)]
        upcoming = shelf.unlaunched(self._clock)
        if not len(upcoming):
            raise ValueError("no cold-start items: every item has launched by now")
        soon = max(shelf.live(self._clock + self.config.young_age_s), upcoming.start + 1)
        return self._items[shelf.pick(rng, range(upcoming.start, soon))]

    def oracle_variant(self, req: RankingRequest) -> str:
        """The candidate with the highest true CTR: what a perfect ranker shows."""
        return max(
            req.candidates,
            key=lambda v: self.true_ctr(req.segment, req.item_id, v, req.position, req.ts),
        )

    def make_impression(self, req: RankingRequest, variant: str) -> Impression:
        """A hypothetical impression of ``variant`` for ``req``, for a model to score."""
        entry = self.entry(req.item_id, variant)
        rid = f"rank-{req.item_id}-{variant}"
        return Impression(
            event_id=rid,
            impression_id=rid,
            ts=req.ts,
            item_id=req.item_id,
            image_id=entry.image_id,
            variant=variant,
            title=entry.title,
            position=req.position,
            segment=req.segment,
        )
