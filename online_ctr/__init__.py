"""Pure learning code for the online CTR model: no Kafka, Redis or Triton imports.

Rooms:

* :mod:`~online_ctr.models` — what a CTR model is (``protocol``: ``CtrModel``,
  ``LinearCtrModel``), the River classifiers we wrote (``ftrl``, ``bayes``) and the
  ``registry`` of model variants with ``make_model``;
* :mod:`~online_ctr.promotion` — a new encoder version against the current one:
  the champion/challenger ``duel``, its always-valid paired test (``sequential``),
  and the ``weight_map`` that carries the champion's image weights over;
* :mod:`~online_ctr.ab` — visual A/B tests: arm posteriors, chance to win and risk,
  SRM, the decision rule, Thompson allocation, the Beta distribution beneath them.

At this level, the learning loop and what it keeps:

* :mod:`~online_ctr.features` — an impression (and its embeddings) to a sparse dict;
* :mod:`~online_ctr.fnw` — the label and weight of a labelled example (late clicks, FNW);
* :mod:`~online_ctr.metrics` — progressive validation: log loss, NE, AUC, calibration;
* :mod:`~online_ctr.learner` — predict, record, learn; reorder buffer; dedup;
* :mod:`~online_ctr.frozen` — the serving view of a learned model;
* :mod:`~online_ctr.checkpoint` — signed, atomic checkpoints with their offsets;
* :mod:`~online_ctr.store` — the model store port: where readers outside the learner
  find the current model (file and in-memory adapters).
"""
