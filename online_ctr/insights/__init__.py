"""What drives clicks, per audience: attribute effects on CTR with FDR control.

Counts of impressions and clicks per (image, segment group) and each image's
measured attributes in; per group and attribute out: the relative CTR lift
(per +1 standard deviation, or tag vs its comparison), a 95% interval, a
p-value and a Benjamini-Hochberg q-value over every pair reported together.
Pure: no I/O. One concept per module:

* :mod:`~online_ctr.insights.attributes` — an image's attributes, the source port;
* :mod:`~online_ctr.insights.groups` — segment groups, counts rolled up to them;
* :mod:`~online_ctr.insights.design` — one group's design (standardised, within items);
* :mod:`~online_ctr.insights.regression` — the binomial GLM, cluster-robust by item;
* :mod:`~online_ctr.insights.fdr` — Benjamini-Hochberg q-values;
* :mod:`~online_ctr.insights.drivers` — the whole estimate and its result types.
"""

from __future__ import annotations

from online_ctr.insights.attributes import (
    AttributeSource,
    ImageAttributes,
    NoAttributes,
    StaticAttributes,
)
from online_ctr.insights.drivers import MIN_CLICKS, Drivers, Effect, GroupFit, estimate_drivers
from online_ctr.insights.fdr import DEFAULT_Q, bh_q_values
from online_ctr.insights.groups import (
    ALL,
    CellCount,
    GroupCount,
    group_fields,
    roll_up,
    segment_groups,
)

__all__ = [
    "ALL",
    "DEFAULT_Q",
    "MIN_CLICKS",
    "AttributeSource",
    "CellCount",
    "Drivers",
    "Effect",
    "GroupCount",
    "GroupFit",
    "ImageAttributes",
    "NoAttributes",
    "StaticAttributes",
    "bh_q_values",
    "estimate_drivers",
    "group_fields",
    "roll_up",
    "segment_groups",
]
