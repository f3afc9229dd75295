"""Every example in a docstring runs, and says something true.

Docstring examples (``>>>``) are the executable half of the documentation,
as in River. This finds every module of the packages whose source has one
and runs its examples with :mod:`doctest` (what ``python -m doctest`` does),
so ``pytest tests`` and ``pytest tests/unit`` check them without
``--doctest-modules``, and a new example is run without touching this file.
A module whose import starts something heavy (a model download, Triton)
goes in :data:`SKIP` with the reason; none does today.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "schemas",
    "online_ctr",
    "simulator",
    "encoder_server",
    "wiring",
    "streams",
    "api",
    "bertctr",
)
#: module -> why its examples are not run here
SKIP: dict[str, str] = {}


def modules_with_examples() -> list[str]:
    """The dotted names of the packages' modules whose source has a ``>>>``."""
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if ">>>" in path.read_text():
                parts = path.relative_to(ROOT).with_suffix("").parts
                found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(found)


MODULES = modules_with_examples()


@pytest.mark.parametrize("name", [m for m in MODULES if m not in SKIP])
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    assert tests, f"{name} has '>>>' in its source but no docstring example"
    runner = doctest.DocTestRunner()
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
    assert result.attempted >= 1


def test_the_examples_are_found() -> None:
    assert {
        "online_ctr.models.protocol",
        "online_ctr.ab",
        "online_ctr.promotion.sequential",
    } <= set(MODULES)
    assert {"simulator.traffic", "encoder_server.projection", "api.series"} <= set(MODULES)
    assert set(SKIP) <= set(MODULES), "a skipped module that has no examples any more"
