"""The API is a reader of Redis: importing it must not load a stream processor."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.unit.test_layers import ROOT

PROBE = """
import json, sys
import api.app
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {
    "faust", "mode", "aiokafka", "streams", "torch"})))
"""


def loaded_by_the_api() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(out.stdout.splitlines()[-1])
    return loaded


def test_the_api_starts_without_faust_the_worker_or_torch() -> None:
    loaded = loaded_by_the_api()
    assert [m for m in loaded if m.split(".")[0] in {"faust", "mode", "aiokafka", "torch"}] == []
    for worker_module in ("streams.worker", "streams.agents", "streams.kafka.app"):
        assert worker_module not in loaded
    # the readers are what it does load from the stream's side
    assert "streams.readers" in loaded
