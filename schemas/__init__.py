"""Event contract of bertctr: the single source of event types.

Producers publish :class:`Impression` and :class:`Click` as JSON to the
``impressions`` and ``clicks`` topics, keyed by ``impression_id``. The join
emits :class:`LabelledImpression` to ``labelled``; anything it cannot use goes
to ``dead-letter`` as a :class:`DeadLetter`. ``bertctr schemas export DIR``
writes the JSON Schema of each model for producers in other languages.
"""

from schemas.events import (
    SCHEMA_VERSION,
    Click,
    DeadLetter,
    Impression,
    LabelledImpression,
    Segment,
)
from schemas.export import export_json_schemas

__all__ = [
    "SCHEMA_VERSION",
    "Click",
    "DeadLetter",
    "Impression",
    "LabelledImpression",
    "Segment",
    "export_json_schemas",
]
