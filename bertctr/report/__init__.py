"""``bertctr report``: one static HTML page (and its PNGs) on what a run learned.

One module per concern: :mod:`.data` (what each section is drawn from),
:mod:`.gather` (reading it from Redis and the image store), :mod:`.plots`
(matplotlib, Agg), :mod:`.sections` (one function per section, plain data
in, HTML out), :mod:`.page` (the page), :mod:`.write` (the folder),
:mod:`.since` (``--since``), :mod:`.make` (from settings: the call the CLI
and the demo share) and :mod:`.oracle` (the simulator's NE curve, which
only the demo can pass in).
"""

from __future__ import annotations

from bertctr.report.data import ReportData, Unavailable
from bertctr.report.gather import gather_report
from bertctr.report.make import make_report
from bertctr.report.oracle import oracle_ne_curve
from bertctr.report.since import Since, parse_since
from bertctr.report.write import write_report

__all__ = [
    "ReportData",
    "Since",
    "Unavailable",
    "gather_report",
    "make_report",
    "oracle_ne_curve",
    "parse_since",
    "write_report",
]
