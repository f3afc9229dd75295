"""Building from settings happens in ``wiring``: nowhere else builds a store or learner."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_layers import ROOT

#: the classes that must be built from settings only in wiring/
BUILT_IN_WIRING = {"FileModelStore", "Learner", "Embedder", "TritonEmbeddingClient"}
#: names that hold settings where they are read
SETTINGS_NAMES = {"settings", "DEFAULTS", "s"}
SCANNED = ("schemas", "online_ctr", "simulator", "encoder_server", "streams", "api", "bertctr")


def _reads_settings(node: ast.AST) -> bool:
    return any(
        (
            isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name)
            and n.value.id in SETTINGS_NAMES
        )
        or (isinstance(n, ast.Name) and n.id in SETTINGS_NAMES)
        for n in ast.walk(node)
    )


def built_from_settings(source: str) -> list[str]:
    """``Class(...)`` calls of :data:`BUILT_IN_WIRING` whose arguments read settings."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name in BUILT_IN_WIRING and any(
            _reads_settings(a) for a in [*node.args, *(k.value for k in node.keywords)]
        ):
            found.append(f"{name} at line {node.lineno}")
    return found


def champion_written_out(source: str) -> bool:
    """``champion_version or IMAGE_ENCODER``: the champion's image model, written by hand."""
    return "champion_version or IMAGE_ENCODER" in source


def scanned_files() -> list[Path]:
    files = [p for package in SCANNED for p in (ROOT / package).rglob("*.py")]
    return sorted([*files, *(ROOT / "bench").rglob("*.py")])


def test_stores_learners_and_embedders_are_built_from_settings_only_in_wiring() -> None:
    offenders = {
        str(p.relative_to(ROOT)): found
        for p in scanned_files()
        if (found := built_from_settings(p.read_text()))
    }
    assert offenders == {}


def test_the_champions_image_model_has_one_home() -> None:
    offenders = [
        str(p.relative_to(ROOT)) for p in scanned_files() if champion_written_out(p.read_text())
    ]
    assert offenders == []


def test_the_scan_can_fail() -> None:
    src = (
        "store = FileModelStore(settings.checkpoint_dir, key)\n"
        "Learner(make_model(DEFAULTS.model))\n"
    )
    assert built_from_settings(src) == ["FileModelStore at line 1", "Learner at line 2"]
    assert built_from_settings("store = FileModelStore(tmp / 'ckpt', KEY)") == []
    assert champion_written_out("m = duel.champion_version or IMAGE_ENCODER")
    assert "wiring" not in SCANNED
