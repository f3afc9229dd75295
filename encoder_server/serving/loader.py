"""Which encoders a process serves: the one place that picks backbones and heads.

The server, the exporter and the benchmarks all call :func:`load_encoders`,
so they cannot disagree about which model is version N. Without a CLIP path
the defaults are the packaged EfficientNet-Lite0 and all-MiniLM-L6-v2, each
with its fixed random version-1 head unless a fitted projection file is
given; with one, CLIP serves both modalities in its joint space.

Versions published to an :class:`~encoder_server.serving.repository.EncoderRepository`
(fine-tuned heads) are served beside those, each under its own model name
(:func:`~encoder_server.base.served_name`): :func:`version_encoder` puts a
published head on the base encoder's backbone, and :class:`VersionPoller`
finds new versions, has them bound and records the outcome in ``status.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from encoder_server.base import Encoder, served_name
from encoder_server.projection import Projection
from encoder_server.serving.repository import EncoderRepository, Signature, VersionStatus

__all__ = ["VersionPoller", "load_encoders", "version_encoder"]

log = logging.getLogger(__name__)


def load_encoders(
    clip_path: str | None = None,
    image_projection: Path | None = None,
    text_projection: Path | None = None,
    input_size: int = 224,
) -> list[Encoder]:
    """Load ``[image encoder, text encoder]``.

    Parameters
    ----------
    clip_path:
        Local CLIP checkpoint directory; when set, CLIP encodes both images
        and titles (``input_size`` is then the checkpoint's own).
    image_projection, text_projection:
        ``.npz`` heads written by :meth:`Projection.save`; their versions are
        the encoders' versions. Default: the fixed version-1 heads.
    input_size:
        EfficientNet input side in pixels (smaller is faster on CPU).
    """
    image_head = Projection.load(image_projection) if image_projection else None
    text_head = Projection.load(text_projection) if text_projection else None
    if clip_path:
        from encoder_server.serving.clip import load_clip_encoders

        image, text = load_clip_encoders(clip_path, image_head, text_head)
        return [image, text]
    from encoder_server.serving.image_encoder import ImageEncoder
    from encoder_server.serving.text_encoder import TextEncoder

    return [ImageEncoder(image_head, input_size=input_size), TextEncoder(text_head)]


def version_encoder(base: Encoder, head: Projection) -> Encoder:
    """``head`` on ``base``'s backbone: a published version of ``base``'s model.

    The backbone is shared, not loaded again (see
    :meth:`~encoder_server.serving.image_encoder.ImageEncoder.with_head`).

    Raises
    ------
    ValueError
        If ``head`` does not fit the backbone's features, or ``base`` is not
        the EfficientNet image encoder: text and CLIP versions are not
        served from a repository (their encoders cannot share a network yet).
    """
    from encoder_server.serving.image_encoder import ImageEncoder

    if isinstance(base, ImageEncoder):
        return base.with_head(head)
    raise ValueError(
        f"repository versions of {base.name} are not served "
        f"({type(base).__name__} cannot take another head; only ImageEncoder can)"
    )


class VersionPoller:
    """Serves each version in a repository, once, beside the base encoders.

    Each :meth:`poll` tries every version it has not tried yet: the head is
    loaded and checked (:meth:`EncoderRepository.load`), put on the base
    encoder of its model (``make``, default :func:`version_encoder`) and
    bound under :func:`~encoder_server.base.served_name`. The outcome goes to
    the version's ``status.json``. Only the base encoders' models are looked
    at (``image_encoder``, ``text_encoder``); text versions are refused
    (failed) by :func:`version_encoder`. A failure of any kind is recorded and
    logged, never raised: one bad head must not stop the server or the
    versions it serves. A failed version is tried again only when its files
    change (:meth:`EncoderRepository.files_signature`); a served one is never
    reloaded (published versions do not change) nor unloaded when its
    directory goes; a restarted server tries everything again.

    Parameters
    ----------
    repository:
        Where versions are published.
    bases:
        The base encoders, by model name the versions belong to.
    make:
        Builds the served encoder of a head on a base encoder.
    """

    def __init__(
        self,
        repository: EncoderRepository,
        bases: Sequence[Encoder],
        make: Callable[[Encoder, Projection], Encoder] = version_encoder,
    ) -> None:
        self.repository = repository
        self.bases = {e.name: e for e in bases}
        self.make = make
        #: served name -> version, of every version this poller got served
        self.served: dict[str, int] = {}
        self._tried: dict[tuple[str, int], Signature] = {}

    def poll(self, bind: Callable[[Encoder, str], str]) -> dict[str, int]:
        """Serve every new version through ``bind``; return those served now, name -> version.

        ``bind`` loads an encoder under a model name and returns its
        fingerprint (:func:`encoder_server.serving.serve.bind_live`).
        """
        try:
            untried = list(self._untried())
        except OSError as exc:  # a repository on a lost mount: try again next poll
            log.error("cannot read the version repository %s: %s", self.repository.root, exc)
            return {}
        new = {}
        for model, version in untried:
            if self._serve(model, version, bind):
                new[served_name(model, version)] = version
        self.served.update(new)
        return new

    def _untried(self) -> Iterator[tuple[str, int]]:
        """Versions not served and never tried, or failed and changed since.

        Only the models this server has a base encoder for are looked at:
        the repository root also holds what publishers keep beside the
        versions (reports, state files), which must not be taken for models.
        """
        for model in sorted(self.bases):
            for version in self.repository.version_numbers(model):
                if served_name(model, version) in self.served:
                    continue
                signature = self.repository.files_signature(model, version)
                if self._tried.get((model, version)) != signature:
                    self._tried[(model, version)] = signature
                    yield model, version

    def _serve(self, model: str, version: int, bind: Callable[[Encoder, str], str]) -> bool:
        """Load, bind and record one version; False (recorded, logged) if it failed."""
        started = time.perf_counter()
        name = served_name(model, version)
        try:
            fingerprint = bind(self._build(model, version), name)
        except Exception as exc:  # anything: a bad version must never stop the server
            log.error("%s v%d not served: %s: %s", model, version, type(exc).__name__, exc)
            self._record(model, version, VersionStatus("failed", error=_reason(exc)))
            return False
        load_s = round(time.perf_counter() - started, 2)
        log.info("serving %s v%d as %s (loaded in %.1fs)", model, version, name, load_s)
        self._record(
            model, version, VersionStatus("ready", served_fingerprint=fingerprint, load_s=load_s)
        )
        return True

    def _build(self, model: str, version: int) -> Encoder:
        """The encoder a version serves (raises if the version is bad)."""
        head, _ = self.repository.load(model, version)
        return self.make(self.bases[model], head)

    def _record(self, model: str, version: int, status: VersionStatus) -> None:
        """Write ``status.json``; a repository that cannot be written is logged, not fatal."""
        try:
            self.repository.set_status(model, version, status)
        except OSError as exc:
            log.error("cannot write the status of %s v%d: %s", model, version, exc)


def _reason(exc: BaseException) -> str:
    """What ``status.json`` says went wrong: the exception's type and message."""
    return f"{type(exc).__name__}: {exc}"
