"""pytest plugin for ``make mutation`` only (``[tool.mutmut] pytest_add_cli_args``).

mutmut 3.7.0 (the newest release that installs beside faust-streaming's
``click<8.4``) maps tests to functions through ``item._nodeid``, an attribute
pytest 9 no longer sets; without it every stats run fails with an
AttributeError. The public ``nodeid`` is the same string.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "_nodeid" not in vars(item):
            vars(item)["_nodeid"] = item.nodeid
