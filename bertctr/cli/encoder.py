"""``bertctr encoder ...``: serve the encoders on Triton, export a repository, fit a head.

Commands:

* ``encoder serve`` runs PyTriton's Triton with both encoders until SIGTERM
  or Ctrl-C. Once every model is loaded it prints one JSON line on stdout,
  ``{"ready": true, "grpc_url": ..., "models": {...}}``, which launchers (the
  integration tests) wait for; port 0 means "pick a free port". With
  ``--repository DIR`` it also serves every version published there (see
  :mod:`encoder_server.serving.repository`) and loads new ones live, polling every
  ``--poll-s`` seconds.
* ``encoder export DIR`` writes a model repository for a stock
  ``tritonserver`` (see :mod:`encoder_server.serving.export`).
* ``encoder fit-projection`` fits a PCA head on the pooled features of a
  directory of images (or of titles, one per line) and saves it as a new
  version (default 2). Unreadable images are skipped with a warning. For
  images, ``--features multiscale`` fits on the multi-scale features (and
  standardises them), and ``--groups FILE`` (a JSON object: image file name
  without suffix -> item id) takes the directions from how each item's
  variants differ; see :mod:`encoder_server.projection` for why.

``BERTCTR_CLIP_PATH`` switches every command to a local CLIP checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from schemas.settings import Settings

__all__ = ["add_encoder_commands"]

log = logging.getLogger("bertctr.encoder")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _say(line: str, stream: TextIO | None = None) -> None:
    """One line of command output (stdout for programs, stderr for errors), flushed."""
    out = stream or sys.stdout
    out.write(line + "\n")
    out.flush()


def _projection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-projection", type=Path, help="image head .npz (a new version)")
    parser.add_argument("--text-projection", type=Path, help="text head .npz (a new version)")
    parser.add_argument(
        "--input-size", type=int, default=224, help="EfficientNet input side in pixels"
    )


def cmd_encoder_serve(args: argparse.Namespace, settings: Settings) -> int:
    from bertctr.harness.procs import free_ports
    from encoder_server.serving.loader import VersionPoller, load_encoders
    from encoder_server.serving.repository import EncoderRepository
    from encoder_server.serving.serve import ServerAddresses, serve

    # A server says where it listens even at the default WARNING level.
    for name in ("encoder_server", "bertctr.encoder"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    encoders = load_encoders(
        settings.clip_path, args.image_projection, args.text_projection, args.input_size
    )
    versions = None
    if args.repository is not None:
        versions = VersionPoller(EncoderRepository(args.repository), encoders)

    # PyTriton echoes tritonserver's own log with print(); send that to
    # stderr so stdout carries only the readiness line programs wait for.
    stdout = sys.stdout

    def ready(addresses: ServerAddresses) -> None:
        _say(addresses.to_json(), stdout)

    # port 0 means "pick a free one": Triton itself needs a number, and
    # three distinct ones (it refuses to start when two collide)
    spare = iter(free_ports(3, args.host))
    with contextlib.redirect_stdout(sys.stderr):
        serve(
            encoders,
            grpc_port=args.grpc_port or next(spare),
            http_port=args.http_port or next(spare),
            metrics_port=args.metrics_port or next(spare),
            host=args.host,
            max_batch_size=args.max_batch_size,
            queue_delay_us=args.queue_delay_us,
            on_ready=ready,
            versions=versions,
            poll_s=args.poll_s,
        )
    return 0


def cmd_encoder_export(args: argparse.Namespace, settings: Settings) -> int:
    from encoder_server.serving.export import export_repository

    written = export_repository(
        Path(args.dir),
        args.image_projection,
        args.text_projection,
        clip_path=settings.clip_path,
        input_size=args.input_size,
        max_batch_size=args.max_batch_size,
    )
    for path in written:
        _say(str(path))
    return 0


class UsageError(Exception):
    """A command was asked for something it cannot do; the message says why."""


@dataclass
class FitInput:
    """Pooled features to fit a head on, one row per item, and what failed."""

    features: Any
    errors: list[str]
    groups: list[str] | None


def _title_features(args: argparse.Namespace) -> FitInput:
    if args.groups or args.features != "last":
        raise UsageError("--groups and --features are for image heads")
    from encoder_server.serving.text_encoder import TextEncoder

    titles = [line.strip() for line in Path(args.titles_file).read_text().splitlines()]
    features, errors = TextEncoder().features([t.encode("utf-8") for t in titles if t])
    return FitInput(features, list(errors), None)


def _image_features(args: argparse.Namespace) -> FitInput:
    if not args.images:
        raise UsageError("give --images DIR or --titles-file FILE")
    from encoder_server.serving.image_encoder import ImageEncoder

    paths = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    groups = None
    if args.groups:
        try:
            groups = _read_groups(Path(args.groups), [p.stem for p in paths])
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    encoder = ImageEncoder(features=args.features, input_size=args.input_size)
    features, errors = encoder.pooled([p.read_bytes() for p in paths])
    return FitInput(features, list(errors), groups)


def _fit_head(args: argparse.Namespace, found: FitInput) -> tuple[Any, int, int]:
    """The PCA head on the items that embedded; (head, items used, items skipped)."""
    import numpy as np

    from encoder_server.projection import fit_pca

    good = np.array([not e for e in found.errors], dtype=bool)
    for i in np.flatnonzero(~good):
        log.warning("skipping item %d: %s", i, found.errors[i])
    if good.sum() < args.dim:
        raise UsageError(f"{int(good.sum())} good items, need at least --dim {args.dim}")
    groups = found.groups
    head = fit_pca(
        found.features[good],
        args.dim,
        version=args.version,
        standardise=True if args.standardise else None,
        groups=[g for g, ok in zip(groups, good, strict=True) if ok] if groups else None,
        feature_kind=args.features,
    )
    return head, int(good.sum()), int((~good).sum())


def cmd_encoder_fit_projection(args: argparse.Namespace, settings: Settings) -> int:
    """Fit a PCA head on images or titles, save it, print what was fitted."""
    try:
        if settings.clip_path:
            # CLIP heads are fitted on joint-space features, which need their own
            # feature extraction; a head fitted here would not fit a CLIP server.
            raise UsageError(
                "fit-projection fits EfficientNet/MiniLM heads; unset BERTCTR_CLIP_PATH"
            )
        found = _title_features(args) if args.titles_file else _image_features(args)
        head, used, skipped = _fit_head(args, found)
    except UsageError as exc:
        _say(f"error: {exc}", sys.stderr)
        return 2
    head.save(Path(args.out))
    summary = {
        "out": str(args.out),
        "kind": head.kind,
        "version": head.version,
        "d_in": head.d_in,
        "d_out": head.d_out,
        "features": head.features,
        "items": used,
        "skipped": skipped,
        "note": head.note,
    }
    _say(json.dumps(summary))
    return 0


def _read_groups(path: Path, stems: list[str]) -> list[str]:
    """The group of each image stem from a JSON object ``{stem: group}``.

    An image the file does not name is its own group (it adds no within-item
    variation) and is logged, so a stale groups file is visible, not fatal.
    """
    try:
        mapping = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read --groups {path}: {exc}") from exc
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ValueError(f"--groups {path} must be a JSON object of image name -> item id")
    missing = [s for s in stems if s not in mapping]
    if missing:
        log.warning("%d images have no group in %s (e.g. %s)", len(missing), path, missing[0])
    return [mapping.get(s, f"\0{s}") for s in stems]


def add_encoder_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``encoder serve|export|fit-projection`` on the top-level subparsers."""
    encoder = sub.add_parser("encoder", help="image and text encoders on Triton")
    encoder_sub = encoder.add_subparsers(dest="encoder_command", required=True)

    serve = encoder_sub.add_parser("serve", help="serve both encoders on Triton until SIGTERM")
    serve.add_argument("--grpc-port", type=int, default=8001, help="0 picks a free port")
    serve.add_argument("--http-port", type=int, default=8000, help="0 picks a free port")
    serve.add_argument("--metrics-port", type=int, default=8002, help="0 picks a free port")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--max-batch-size", type=int, default=64)
    serve.add_argument(
        "--queue-delay-us", type=int, default=2000, help="dynamic batcher's max queue delay"
    )
    _projection_options(serve)
    serve.add_argument(
        "--repository",
        type=Path,
        help="encoder version repository: serve its versions as <model>.v<N>, new ones live",
    )
    serve.add_argument(
        "--poll-s", type=float, default=2.0, help="how often to look for new versions"
    )
    serve.set_defaults(func=cmd_encoder_serve)

    export = encoder_sub.add_parser("export", help="write a Triton model repository")
    export.add_argument("dir")
    export.add_argument("--max-batch-size", type=int, default=64)
    _projection_options(export)
    export.set_defaults(func=cmd_encoder_export)

    fit = encoder_sub.add_parser("fit-projection", help="fit a PCA head on images or titles")
    fit.add_argument("--images", help="directory of .png/.jpg/.webp images")
    fit.add_argument("--titles-file", help="UTF-8 titles, one per line (fits a text head)")
    fit.add_argument("--dim", type=int, default=16, help="embedding dimension of the head")
    fit.add_argument("--version", type=int, default=2, help="encoder version the head defines")
    fit.add_argument("--input-size", type=int, default=224, help="EfficientNet input side")
    fit.add_argument(
        "--features",
        choices=("last", "multiscale"),
        default="last",
        help="image features: the last layer, or every level pooled (standardised)",
    )
    fit.add_argument(
        "--standardise", action="store_true", help="scale features to unit variance first"
    )
    fit.add_argument("--groups", help="JSON object: image name (no suffix) -> item id")
    fit.add_argument("--out", required=True, help=".npz file to write")
    fit.set_defaults(func=cmd_encoder_fit_projection)
