"""Champion and challenger: two CTR models on one labelled stream, and one decision.

A new encoder version must prove itself on live traffic before it serves.
When one is announced, the champion (the CTR model on the serving version's
embeddings) goes on learning and serving as before, and a *challenger* is
trained in shadow on exactly the same labelled examples, in the same order,
with the new version's embeddings. Both score each example before learning
it, so every example gives one paired log-loss difference, and an
always-valid sequential comparison (:mod:`online_ctr.promotion.sequential`) decides:
*promote* (the challenger becomes the champion, its version the serving one)
or *retire* (it is dropped; the champion never noticed).

The challenger starts warm: a copy of the champion that keeps what it
learned about everything but the image embedding (segments, positions, ids,
titles); started cold it would lose every comparison for thousands of
examples for reasons that have nothing to do with the encoder. Its image
weights (which mean something else under the new head) are *carried over*:
for the first ``calibration`` examples after the announcement only the
champion learns, while both versions' embeddings of the same images are
collected; then the challenger is copied with the champion's image weights
mapped through the least-squares map between the two embeddings
(:mod:`online_ctr.promotion.weight_map`, which says what relearning them from zero
would cost), both arms' image weights restart at a new feature's step size
(so the challenger can move its carried weights, and the champion is not
the slower learner of the two), and the comparison starts.
``calibration=0`` starts the challenger at once with its image weights
forgotten instead. Only a :class:`~online_ctr.models.protocol.LinearCtrModel` can
carry or forget weights; any other model learns the new embedding on top.
Examples the champion was holding in its reorder buffer at that moment
(embedded with the old version) go to the challenger with the new version's
embedding of their image, which the calibration saw for its last
``calibration`` examples, and without one otherwise: both arms still score
and learn all of them, so the count of examples learned never depends on
whether a comparison ran, and those without an image only handicap the
challenger.

Pickled whole into the model snapshot, so a restarted worker resumes the
comparison where it was. Readers that only want the serving model call
:func:`serving_learner`, which also accepts snapshots written before duels
existed (a bare :class:`~online_ctr.learner.Learner`).

>>> from online_ctr.models.registry import make_model
>>> duel = EncoderDuel(Learner(make_model()), version="2")
>>> duel.challenge("3", margin=0.0)
>>> duel.status()["challenger"]
'3'
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from typing import Any

from online_ctr.features import is_image_feature
from online_ctr.learner import Content, Embedding, Learner
from online_ctr.models.protocol import LinearCtrModel
from online_ctr.promotion.sequential import SequentialComparison, logloss_advantage
from online_ctr.promotion.weight_map import EmbeddingPairs, carry_weights
from schemas.events import LabelledImpression

__all__ = ["EncoderDuel", "serving_learner"]

log = logging.getLogger(__name__)

#: decisions remembered (for ``bertctr stats``, and so that a version is
#: never judged twice); the oldest are dropped
HISTORY = 100
#: examples whose two embeddings fit the weight map before the comparison
#: starts (a few seconds of traffic; an 8-d map needs far fewer images)
CALIBRATION = 1000


def serving_learner(snapshot_object: Any) -> Learner:
    """The model that serves: the champion of a duel, or a snapshot's bare learner."""
    if isinstance(snapshot_object, EncoderDuel):
        return snapshot_object.champion
    if isinstance(snapshot_object, Learner):
        return snapshot_object
    raise TypeError(f"not a model snapshot: {type(snapshot_object).__name__}")


def _warm_challenger(
    champion: Learner, pairs: EmbeddingPairs | None, recent: dict[str, Embedding]
) -> Learner:
    """A copy of ``champion`` with its image weights carried over (or forgotten), as above."""
    journal, champion.journal = champion.journal, None
    try:
        challenger = copy.deepcopy(champion)
    finally:
        champion.journal = journal
    model = challenger.model
    if isinstance(model, LinearCtrModel):
        carried = carry_weights(model.weights, pairs) if pairs is not None else {}
        forgotten = _reset_image_weights(model, carried)
        log.info(
            "challenger starts from the champion: %d image weights carried over, %d forgotten",
            len(carried),
            forgotten,
        )
    else:  # a model that cannot forget selectively learns the new embedding on top
        log.warning("%s cannot forget image features", type(model).__name__)
    challenger.swap_buffered_images(recent)
    return challenger


def _restart_image_steps(champion: Learner) -> None:
    """Give the champion's image weights a new feature's step size, as the challenger's have.

    Carried weights restart their step sizes so that the challenger can move
    them (:meth:`~online_ctr.models.protocol.LinearCtrModel.set_weights`). Left
    alone, the champion would then be the slower learner of the two on the
    image features, and on a stream where images matter a lot a version
    *identical* to the champion's could win its duel for that reason alone
    (it did: ``docs/measurements.md``). Restarting both keeps the
    comparison about the encoder: same weights, same step sizes, so an
    identical version predicts exactly like the champion. The champion's
    predictions do not change; its image weights just learn faster for a
    while.
    """
    model = champion.model
    if isinstance(model, LinearCtrModel):
        _reset_image_weights(model, {f: w for f, w in model.weights.items() if is_image_feature(f)})


def _reset_image_weights(model: LinearCtrModel, weights: Mapping[Any, float]) -> int:
    """Image features become exactly ``weights`` at a new feature's step size; the rest forgotten.

    The one mechanism behind both arms' start. Returns how many image features
    were forgotten.
    """
    forgotten = model.forget(lambda f: is_image_feature(f) and f not in weights)
    model.set_weights(weights)
    return forgotten


class EncoderDuel:
    """The serving CTR model and, while a new encoder version is judged, its challenger.

    Parameters
    ----------
    champion
        The learner that serves.
    version
        The encoder version (its cache tag) the champion's image embeddings
        come from; ``None`` before any version is known.
    """

    def __init__(self, champion: Learner, version: str | None = None) -> None:
        self.champion = champion
        self.champion_version = version
        self.challenger: Learner | None = None
        self.challenger_version: str | None = None
        self.comparison: SequentialComparison | None = None
        self.started_at: float | None = None
        #: paired embeddings for the weight map while calibrating (see the module docstring)
        self.pairs: EmbeddingPairs | None = None
        #: examples to calibrate on before the challenger starts
        self.calibration = 0
        #: the challenger's image embedding of the latest calibration examples, by
        #: label id: the champion's reorder buffer holds them when the challenger starts
        self.recent: dict[str, Embedding] = {}
        #: the latest decisions, newest last (see :meth:`status`)
        self.decisions: list[dict[str, Any]] = []

    def __setstate__(self, state: dict[str, Any]) -> None:
        # duels checkpointed before the weight map existed load without calibration
        state.setdefault("pairs", None)
        state.setdefault("calibration", 0)
        state.setdefault("recent", {})
        self.__dict__.update(state)

    @classmethod
    def adopt(cls, snapshot_object: Any, version: str | None = None) -> EncoderDuel:
        """The duel of a snapshot; a bare learner (an older snapshot) becomes its champion."""
        if isinstance(snapshot_object, EncoderDuel):
            return snapshot_object
        return cls(serving_learner(snapshot_object), version)

    @property
    def judged(self) -> set[str]:
        """Versions already compared (decided, serving or being judged): never again."""
        seen = {d["challenger"] for d in self.decisions} | {self.champion_version}
        return {v for v in (*seen, self.challenger_version) if v is not None}

    def counts(self) -> dict[str, int]:
        """Decisions so far, by kind (of the remembered history)."""
        out = {"promote": 0, "retire": 0}
        for d in self.decisions:
            out[d["decision"]] = out.get(d["decision"], 0) + 1
        return out

    @property
    def calibrating(self) -> bool:
        """A version is announced and its weight map is being fitted; no challenger yet."""
        return self.challenger_version is not None and self.challenger is None

    def abandon(self, reason: str) -> None:
        """Retire the challenger without a verdict (its encoder cannot be reached)."""
        if self.challenger_version is None or self.comparison is None:
            return
        self._decide("retire", reason)
        self._end()

    def challenge(
        self,
        version: str,
        *,
        alpha: float = 0.05,
        margin: float = 0.0,
        max_examples: int = 200_000,
        min_examples: int = 500,
        clip: float = 1.0,
        calibration: int = CALIBRATION,
    ) -> None:
        """Start judging encoder ``version`` against the champion's (replaces a running one).

        ``clip`` (nats) is tighter than :class:`SequentialComparison`'s generic
        default: paired differences between two encoder versions' CTR models
        stay well inside 1 nat, and at the generic 5-nat clip the interval's
        width is set by the range, not the data (``docs/measurements.md``).
        ``calibration``: examples that fit the weight map before the
        challenger starts (0: start now, image weights forgotten).
        """
        if calibration < 0:
            raise ValueError("calibration must be >= 0")
        if self.challenger_version is not None:
            log.warning(
                "challenger %s abandoned for %s after %d examples",
                self.challenger_version,
                version,
                self.comparison.n if self.comparison else 0,
            )
        self.challenger = None
        self.challenger_version = version
        self.comparison = SequentialComparison(
            alpha=alpha,
            margin=margin,
            max_examples=max_examples,
            min_examples=min_examples,
            clip=clip,
        )
        self.started_at = time.time()
        self.calibration = calibration
        self.pairs = EmbeddingPairs() if calibration > 0 else None
        self.recent = {}
        if calibration == 0:
            self._start_challenger()
        else:
            log.info(
                "challenger %s: fitting the weight map on %d examples first",
                version,
                calibration,
            )

    def _start_challenger(self) -> None:
        """Copy the champion into the challenger and start pairing their scores."""
        self.challenger = _warm_challenger(self.champion, self.pairs, self.recent)
        if self.pairs is not None:
            _restart_image_steps(self.champion)
        self.recent = {}
        self.champion.journal = []
        self.challenger.journal = []
        log.info(
            "challenger %s trains in shadow of champion %s",
            self.challenger_version,
            self.champion_version,
        )

    def submit(
        self,
        labelled: LabelledImpression,
        source: str = "",
        champion: Content | None = None,
        challenger: Content | None = None,
    ) -> int:
        """Buffer one example in both arms (each with its own embeddings); learn what is due.

        ``champion`` and ``challenger`` are the example's embeddings by each
        arm's encoder version (``None``: learned without them).
        """
        image, title = (champion.image, champion.title) if champion is not None else (None, None)
        other_image, other_title = (
            (challenger.image, challenger.title) if challenger is not None else (None, None)
        )
        n = self.champion.submit(labelled, source, image, title)
        if self.calibrating and self.pairs is not None:
            self.pairs.add(image, other_image)
            self.recent[labelled.label_id] = other_image
            if len(self.recent) > self.calibration:
                del self.recent[next(iter(self.recent))]
            if self.pairs.n + self.pairs.skipped >= self.calibration:
                self._start_challenger()
        elif self.challenger is not None:
            self.challenger.submit(labelled, source, other_image, other_title)
            self._compare()
        return n

    def advance(self, source: str, watermark: float | None) -> int:
        """Move both arms' watermark (see :meth:`Learner.advance`)."""
        n = self.champion.advance(source, watermark)
        if self.challenger is not None:
            self.challenger.advance(source, watermark)
            self._compare()
        return n

    def flush_unscored(self) -> int:
        """Learn both arms' buffers unscored (see :meth:`Learner.flush_unscored`)."""
        n = self.champion.flush_unscored()
        if self.challenger is not None:
            self.challenger.flush_unscored()
        return n

    def _compare(self) -> None:
        """Pair the scores both arms just made and let the comparison decide."""
        assert self.challenger is not None and self.comparison is not None
        mine = {label_id: (p, y) for label_id, p, y in self.champion.journal or ()}
        diffs = []
        for label_id, p_challenger, y in self.challenger.journal or ():
            found = mine.get(label_id)
            if found is not None:
                diffs.append(logloss_advantage(found[0], p_challenger, y))
        self.champion.journal = []
        self.challenger.journal = []
        if not diffs:
            return
        self.comparison.update_many(diffs)
        decision = self.comparison.decision()
        if decision == "promote":
            self._decide("promote")
            self.champion, self.champion_version = self.challenger, self.challenger_version
        elif decision == "retire":
            self._decide("retire")
        else:
            return
        self._end()

    def _end(self) -> None:
        """Back to the champion alone."""
        self.champion.journal = None
        self.challenger = self.challenger_version = self.comparison = None
        self.pairs = None
        self.recent = {}

    def _decide(self, decision: str, reason: str = "") -> None:
        assert self.comparison is not None
        record = {
            "decision": decision,
            "reason": reason or ("significantly better" if decision == "promote" else "not better"),
            "at": time.time(),
            "champion": self.champion_version,
            "challenger": self.challenger_version,
            **{k: v for k, v in self.comparison.to_dict().items() if k != "decision"},
        }
        if self.comparison.decided_interval is not None:
            # the record quotes the interval the verdict rests on; the running
            # one has absorbed the rest of the batch and can sit on either side
            record["lo"], record["hi"] = self.comparison.decided_interval
        self.decisions = [*self.decisions, record][-HISTORY:]
        log.warning(
            "encoder %s %s against %s after %d examples (advantage %.5f, interval %s)",
            self.challenger_version,
            "PROMOTED" if decision == "promote" else "retired",
            self.champion_version,
            self.comparison.n,
            self.comparison.mean or 0.0,
            self.comparison.interval,
        )

    def status(self) -> dict[str, Any]:
        """What ``bertctr stats --json`` shows under ``encoder``."""
        comparing = self.comparison.to_dict() if self.comparison is not None else None
        return {
            "champion": self.champion_version,
            "challenger": self.challenger_version,
            "comparison": comparing,
            "started_at": self.started_at if self.challenger_version is not None else None,
            "calibrating": self.calibrating,
            "decisions": list(self.decisions),
            "last_decision": self.decisions[-1] if self.decisions else None,
        }
