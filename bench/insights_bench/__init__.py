"""The pieces of ``bench/bench_insights.py``, one concept a module.

``bench/`` is not a package: the script runs as ``python bench/bench_insights.py``,
which puts ``bench/`` first on ``sys.path``, so this package imports as
``insights_bench`` with no path set-up.

* :mod:`.ope`: off-policy evaluation against the simulator's truth (coverage
  of the 95% intervals, doubly robust against IPS).
"""
