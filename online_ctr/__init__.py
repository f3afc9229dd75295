"""Pure learning code for the online CTR model: no Kafka, Redis or Triton imports.

One concept per module:

* :mod:`~online_ctr.protocol` — what a CTR model is: :class:`~online_ctr.protocol.CtrModel`,
  :class:`~online_ctr.protocol.LinearCtrModel`;
* :mod:`~online_ctr.features` — an impression (and, later, its embeddings) to a sparse dict;
* :mod:`~online_ctr.ftrl`, :mod:`~online_ctr.bayes` — the River classifiers we wrote;
* :mod:`~online_ctr.models` — the registry of model variants and ``make_model``;
* :mod:`~online_ctr.fnw` — the label and weight of a labelled example (late clicks, FNW);
* :mod:`~online_ctr.metrics` — progressive validation: log loss, NE, AUC, calibration;
* :mod:`~online_ctr.sequential` — promote or retire a challenger: an always-valid paired test;
* :mod:`~online_ctr.learner` — predict, record, learn; reorder buffer; dedup;
* :mod:`~online_ctr.abtest` — visual A/B tests, one concept per ``ab_*`` module: arm
  posteriors, chance to win and risk, SRM, the decision rule, Thompson allocation;
* :mod:`~online_ctr.checkpoint` — signed, atomic checkpoints with their offsets;
* :mod:`~online_ctr.store` — the model store port: where readers outside the learner
  find the current model (file and in-memory adapters).
"""
