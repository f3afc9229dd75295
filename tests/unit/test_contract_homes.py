"""Every contract has one home: topic names and Redis keys are never spelled elsewhere.

Topic names live in :mod:`schemas.topics`, Redis keys in
:mod:`schemas.keys`. A topic name glued to a prefix, compared with a topic,
or passed as a literal to a topic helper, and a Redis key written after a
prefix, anywhere else in the code (tests and benches included), fails here:
the next renamed topic or key would silently miss that copy.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "online_ctr", "simulator", "encoder_server", "wiring", "streams", "bertctr")
HOMES = {
    Path("schemas/topics.py"),
    Path("schemas/keys.py"),
    Path("tests/unit/schemas/test_keys.py"),
}

TOPIC = r"(impressions|clicks|labelled|dead-letter|join-ticks|join-state|encoder-versions)"
TOPIC_PATTERNS = [
    # f"{prefix}labelled": a topic name glued to a prefix
    re.compile(r"\}" + TOPIC + r"[\"']"),
    # prefix + "labelled"
    re.compile(r"\+\s*[\"']" + TOPIC + r"[\"']"),
    # topic("labelled"), full_name(prefix, "labelled")
    re.compile(r"(topic|full_name)\([^()]*[\"']" + TOPIC + r"[\"']\s*\)"),
    # m.topic == "clicks", tp.topic.endswith("labelled")
    re.compile(r"topic\s*(==|!=)\s*[\"']" + TOPIC + r"[\"']"),
    re.compile(r"\.endswith\(\s*[\"']" + TOPIC + r"[\"']"),
]
KEY = r"(ctr|settled|seen|idx|health|emb|model|clock)(:|[\"'])"
KEY_PATTERNS = [
    # f"{prefix}model:metrics": a Redis key written after a prefix
    re.compile(r"prefix\}" + KEY),
    re.compile(r"[\"']bertctr:" + KEY),
]


def sources() -> list[Path]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    files += list((ROOT / "tests").rglob("*.py")) + list((ROOT / "bench").rglob("*.py"))
    return sorted(p for p in files if p.relative_to(ROOT) not in HOMES and p != Path(__file__))


def offences(patterns: list[re.Pattern[str]]) -> list[str]:
    found = []
    for path in sources():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if any(p.search(line) for p in patterns):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    return found


def test_topic_names_are_spelled_only_in_schemas_topics() -> None:
    assert offences(TOPIC_PATTERNS) == []


def test_redis_keys_are_built_only_in_schemas_keys() -> None:
    assert offences(KEY_PATTERNS) == []


def test_the_patterns_catch_what_they_are_for() -> None:
    """The check can fail: each pattern matches the mistake it names."""
    mistakes = [
        'f"{prefix}labelled"',
        'prefix + "clicks"',
        'env.topic("impressions")',
        'full_name(prefix, "dead-letter")',
        'if m.topic == "clicks":',
        'tp.topic.endswith("labelled")',
    ]
    assert all(any(p.search(m) for p in TOPIC_PATTERNS) for m in mistakes)
    assert not any(p.search('counts["impressions"] += 1') for p in TOPIC_PATTERNS)
    keys = ['f"{keys.prefix}model:metrics"', 'f"{self.prefix}emb:{m}"', '"bertctr:ctr:total"']
    assert all(any(p.search(k) for p in KEY_PATTERNS) for k in keys)
