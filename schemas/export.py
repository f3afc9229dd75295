"""Export the event models as JSON Schema files for non-Python producers."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.events import Click, DeadLetter, EncoderVersion, Impression, LabelledImpression

__all__ = ["EXPORTED", "export_json_schemas"]

EXPORTED: dict[str, type[BaseModel]] = {
    "impression": Impression,
    "click": Click,
    "labelled_impression": LabelledImpression,
    "dead_letter": DeadLetter,
    "encoder_version": EncoderVersion,
}


def export_json_schemas(directory: Path) -> list[Path]:
    """Write ``<name>.schema.json`` for every event model; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in EXPORTED.items():
        path = directory / f"{name}.schema.json"
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
