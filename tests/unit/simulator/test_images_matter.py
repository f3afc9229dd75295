"""Images must matter: the CTR model learns better with encoder embeddings.

The same simulated stream is learned twice by the worker's learner code,
once without and once with the image and title embeddings of the real
encoders (EfficientNet-Lite0 and MiniLM, PCA heads fitted on the rendered
catalogue, as the demo serves them; Triton returns the same vectors, see
``test_triton_encoders``). With them the model must rank variants better on
held-out requests and reach a lower normalised entropy. The figures at 50k
impressions are in ``bench/bench_embeddings.py``; this smaller run keeps the
direction, and would fail if the embeddings carried nothing the ids and
title tokens do not (or if they were not reaching the features).

The demo's image head (8-d PCA of the multi-scale features, fitted within
items) must also rank better than the first served head (16-d PCA of the
last layer): on this run +0.037 of lift (0.340 against 0.303; the oracle's
is 0.44), so a head that lost the early layers' colour and light would fail.
"""

from __future__ import annotations

import pytest

from bertctr.judge import catalogue_embeddings, judge, lookup_from
from simulator import SimConfig, Simulator
from simulator.labelled import labelled_stream

EVENTS = 30_000
SEED = 7


@pytest.mark.timeout(900)
def test_embeddings_improve_ne_and_ranking_lift() -> None:
    sim = Simulator(SimConfig(seed=SEED))
    images, titles = catalogue_embeddings(sim, image_dim=8, text_dim=8)
    last_layer, _ = catalogue_embeddings(sim, image_dim=16, text_dim=8, image_features="last")
    stream = labelled_stream(sim, EVENTS)
    without = judge(sim, stream, None, 2000, SEED + 1000)
    with_ = judge(sim, stream, lookup_from(images, titles), 2000, SEED + 1000)
    assert with_.lift > without.lift + 0.01, (with_, without)
    assert with_.ne < without.ne, (with_, without)
    last = judge(sim, stream, lookup_from(last_layer, titles), 2000, SEED + 1000)
    assert with_.lift > last.lift + 0.01, (with_, last)
