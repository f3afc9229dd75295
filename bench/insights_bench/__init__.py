"""Benchmarks of the insights (issue 22), validated against the simulator's hidden truth.

``drivers`` checks what drives clicks per audience; ``ope`` off-policy
evaluation. Each module's ``run`` returns a dict and prints nothing;
``bench/bench_insights.py`` assembles them.
"""
