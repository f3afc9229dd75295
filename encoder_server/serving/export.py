"""Export a Triton model repository a stock ``tritonserver`` loads (Python backend).

Layout written for each encoder (``image_encoder``, ``text_encoder``)::

    <dir>/image_encoder/config.pbtxt        backend "python", dynamic batching
    <dir>/image_encoder/<version>/model.py  re-exports encoder_server.serving.triton_model
    <dir>/image_encoder/<version>/encoder.json
    <dir>/image_encoder/<version>/projection.npz

The config declares the same tensors as the PyTriton server
(:mod:`encoder_server.serving.serve`), both rendered from :mod:`schemas.tensors`, so
clients cannot tell the two apart. Why the model imports this package rather
than a serialised network is explained in
:mod:`encoder_server.serving.triton_model`; in short, the serving image needs
``pip install .`` of this repository. The version policy is ``latest 1``:
a model's output ``dims`` are per model, not per version, so two versions
with different embedding dimensions cannot be served under one name anyway,
and one served version is what the PyTriton server does too. Exporting a
new head (a new version) next to an old one therefore switches Triton to the
new one on its next repository poll or explicit load.

Versions published to an :class:`~encoder_server.serving.repository.EncoderRepository`
are exported as extra models under their served names
(``image_encoder.v3/config.pbtxt``, ``image_encoder.v3/3/...``), as
``bertctr encoder serve --repository`` serves them, so clients address them
the same way on either server (:func:`export_versions`). Versions that do not
load are left out and logged. Each exported model loads its own backbone: a
stock Triton runs every model in its own Python-backend process anyway.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from encoder_server.base import Encoder, served_name
from encoder_server.serving.repository import BadVersion, EncoderRepository
from encoder_server.serving.serve import DEFAULT_QUEUE_DELAY_US, encoder_parameters
from encoder_server.serving.triton_model import ENCODER_SPEC, PROJECTION_FILE
from schemas.tensors import TensorSpec, encoder_io

__all__ = [
    "MODEL_PY",
    "encoder_spec",
    "export_encoders",
    "export_repository",
    "export_versions",
    "model_config",
]

log = logging.getLogger(__name__)

#: the version directory's model.py: all logic lives in the installed package
MODEL_PY = '''"""bertctr encoder for Triton's Python backend (needs `pip install bertctr`)."""

from encoder_server.serving.triton_model import TritonPythonModel

__all__ = ["TritonPythonModel"]
'''


def encoder_spec(encoder: Encoder, clip_path: str | None = None) -> dict[str, Any]:
    """What :func:`~encoder_server.serving.triton_model.build_encoder` needs to rebuild ``encoder``.

    ``clip_path`` is the checkpoint a CLIP encoder was loaded from (the
    encoder does not keep it); it is written as an absolute path, so the
    serving machine needs the checkpoint at the same place.

    Raises
    ------
    TypeError
        For an encoder class the exporter does not know how to rebuild.
    """
    from encoder_server.serving.clip import ClipImageEncoder, ClipTextEncoder
    from encoder_server.serving.image_encoder import ImageEncoder
    from encoder_server.serving.text_encoder import TextEncoder

    if isinstance(encoder, ImageEncoder):
        return {"encoder": "efficientnet-lite0", "input_size": encoder.input_size}
    if isinstance(encoder, TextEncoder):
        return {"encoder": "all-minilm-l6-v2"}
    if isinstance(encoder, ClipImageEncoder | ClipTextEncoder) and clip_path:
        kind = "clip-image" if isinstance(encoder, ClipImageEncoder) else "clip-text"
        return {"encoder": kind, "clip_path": str(Path(clip_path).resolve())}
    raise TypeError(f"cannot export {type(encoder).__name__}: no rebuild recipe")


def _quote(value: str) -> str:
    """A protobuf text-format string literal: printable ASCII as is, the rest octal-escaped."""
    out = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        if char in '\\"':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _tensors(section: str, tensors: Sequence[TensorSpec]) -> str:
    """An ``input`` or ``output`` block declaring ``tensors`` as the spec says."""
    lines = ",\n".join(
        f"  {{ name: {_quote(t.name)}, data_type: {t.config_dtype}, "
        f"dims: [ {', '.join(str(d) for d in t.shape)} ] }}"
        for t in tensors
    )
    return f"{section} [\n{lines}\n]\n"


def model_config(
    encoder: Encoder,
    max_batch_size: int = 64,
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    name: str | None = None,
) -> str:
    """``config.pbtxt`` text for one encoder (protobuf text format).

    The tensors are :func:`schemas.tensors.encoder_io`'s, as PyTriton's
    binding declares them, so the two servers cannot disagree. ``name`` is
    the model name (default ``encoder.name``; a served name for a version).
    """
    io = encoder_io(encoder.modality, encoder.dim)
    params = "".join(
        f"parameters {{\n  key: {_quote(k)}\n  value {{ string_value: {_quote(v)} }}\n}}\n"
        for k, v in sorted(encoder_parameters(encoder).items())
    )
    return (
        f"name: {_quote(name or encoder.name)}\n"
        'backend: "python"\n'
        f"max_batch_size: {max_batch_size}\n"
        "version_policy: { latest { num_versions: 1 } }\n"
        f"{_tensors('input', io.inputs)}"
        f"{_tensors('output', io.outputs)}"
        f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}\n"
        "instance_group [ { count: 1, kind: KIND_CPU } ]\n"
        f"{params}"
    )


def export_encoders(
    directory: Path | str,
    encoders: Sequence[Encoder],
    max_batch_size: int = 64,
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    clip_path: str | None = None,
) -> list[Path]:
    """Write already-built ``encoders`` into a model repository; return version dirs."""
    root = Path(directory)
    return [
        _export_model(root, encoder.name, encoder, max_batch_size, queue_delay_us, clip_path)
        for encoder in encoders
    ]


def _export_model(
    root: Path,
    name: str,
    encoder: Encoder,
    max_batch_size: int,
    queue_delay_us: int,
    clip_path: str | None,
) -> Path:
    """Write one encoder as model ``name``; return its version directory."""
    projection = getattr(encoder, "projection", None)
    if projection is None:
        raise TypeError(f"{encoder.name} has no projection head to export")
    spec = encoder_spec(encoder, clip_path)
    model_dir = root / name
    version_dir = model_dir / str(encoder.version)
    version_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(
        model_config(encoder, max_batch_size, queue_delay_us, name)
    )
    (version_dir / "model.py").write_text(MODEL_PY)
    (version_dir / ENCODER_SPEC).write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    projection.save(version_dir / PROJECTION_FILE)
    log.info("exported %s v%d (dim %d) to %s", name, encoder.version, encoder.dim, version_dir)
    return version_dir


def export_versions(
    directory: Path | str,
    repository: EncoderRepository,
    bases: Sequence[Encoder],
    max_batch_size: int = 64,
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    clip_path: str | None = None,
) -> list[Path]:
    """Write every loadable repository version of the ``bases``' models, by served name.

    A version that does not load (bad files, a head for other features) is
    logged and left out, as the server would refuse it; return version dirs.
    """
    from encoder_server.serving.loader import version_encoder

    root = Path(directory)
    written = []
    for base in bases:
        for number in repository.version_numbers(base.name):
            name = served_name(base.name, number)
            try:
                encoder = version_encoder(base, repository.load(base.name, number)[0])
            except (BadVersion, ValueError) as exc:
                log.warning("not exporting %s: %s", name, exc)
                continue
            written.append(
                _export_model(root, name, encoder, max_batch_size, queue_delay_us, clip_path)
            )
    return written


def export_repository(
    directory: Path | str,
    image_projection: Path | None = None,
    text_projection: Path | None = None,
    *,
    clip_path: str | None = None,
    input_size: int = 224,
    max_batch_size: int = 64,
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    repository: Path | str | None = None,
) -> list[Path]:
    """Export the encoders :func:`~encoder_server.serving.loader.load_encoders` would serve.

    The encoders are built (a few seconds) rather than described from the
    arguments, so the exported dims and versions are by construction those
    the PyTriton server would serve; with ``repository``, its versions too
    (:func:`export_versions`), as ``encoder serve --repository`` serves them.
    """
    from encoder_server.serving.loader import load_encoders

    encoders = load_encoders(clip_path, image_projection, text_projection, input_size)
    written = export_encoders(directory, encoders, max_batch_size, queue_delay_us, clip_path)
    if repository is not None:
        written += export_versions(
            directory,
            EncoderRepository(repository),
            encoders,
            max_batch_size,
            queue_delay_us,
            clip_path,
        )
    return written
