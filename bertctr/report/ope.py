"""The OPE table's rows from ``bertctr ope --json`` documents (:meth:`OpeReport.as_dict`).

Off-policy estimates need the logged impressions, which Redis does not keep,
so the report takes what ``bertctr ope`` computed: a file holding one
document, a list of them, or one per line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["ope_rows", "read_ope_file"]


def ope_rows(documents: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (policy, estimator): the estimate, its interval, ESS, beside the logged CTR.

    >>> doc = {"policy": "uniform", "n": 900, "logged_ctr": 0.03,
    ...        "estimators": {"snips": {"estimate": 0.031, "ci_low": 0.025, "ci_high": 0.037,
    ...                                 "n": 900, "ess": 850.0}}}
    >>> ope_rows([doc])[0]["estimate"], ope_rows([doc])[0]["estimator"]
    (0.031, 'snips')
    """
    rows = []
    for doc in documents:
        estimators = doc.get("estimators")
        if not isinstance(estimators, Mapping):
            raise ValueError(f"not a bertctr ope document (no estimators): {str(doc)[:80]}")
        for name, block in estimators.items():
            rows.append(
                {
                    "policy": doc.get("policy"),
                    "estimator": name,
                    "impressions": doc.get("n"),
                    "logged CTR": doc.get("logged_ctr"),
                    "estimate": block.get("estimate"),
                    "95% low": block.get("ci_low"),
                    "95% high": block.get("ci_high"),
                    "ESS": block.get("ess"),
                }
            )
    return rows


def read_ope_file(path: str | Path) -> list[dict[str, Any]]:
    """:func:`ope_rows` of a file of ``bertctr ope --json`` output (``ValueError`` if not one)."""
    text = Path(path).read_text(encoding="utf-8").strip()
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
    documents = parsed if isinstance(parsed, list) else [parsed]
    if not all(isinstance(d, Mapping) for d in documents):
        raise ValueError(f"{path}: expected bertctr ope --json documents")
    return ope_rows(documents)
