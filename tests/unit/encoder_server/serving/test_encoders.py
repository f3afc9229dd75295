"""The real encoders: determinism, batch == one by one, per-item failures, CLIP.

Each model is loaded once per module (EfficientNet-Lite0 and MiniLM through
:func:`load_encoders`, a tiny random CLIP saved into a temporary directory).
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from encoder_server.base import IMAGE_ENCODER, TEXT_ENCODER, Encoded, Encoder
from encoder_server.projection import Projection, fit_pca
from encoder_server.serving.clip import ClipImageEncoder
from encoder_server.serving.image_encoder import FEATURE_DIMS, ImageEncoder
from encoder_server.serving.loader import load_encoders
from encoder_server.serving.text_encoder import TextEncoder
from simulator.catalogue import CatalogueEntry, build_catalogue
from simulator.render import render_png


@pytest.fixture(scope="module")
def encoders() -> list[Encoder]:
    return load_encoders()


@pytest.fixture(scope="module")
def image_encoder(encoders: list[Encoder]) -> ImageEncoder:
    assert isinstance(encoders[0], ImageEncoder)
    return encoders[0]


@pytest.fixture(scope="module")
def text_encoder(encoders: list[Encoder]) -> TextEncoder:
    assert isinstance(encoders[1], TextEncoder)
    return encoders[1]


@pytest.fixture(scope="module")
def entries() -> list[CatalogueEntry]:
    return build_catalogue(np.random.default_rng(0), 3, 2)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _huge_png_header() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def _check_good(result: Encoded, dim: int) -> None:
    assert result.embeddings.dtype == np.float32
    assert result.embeddings.shape[1] == dim
    good = [i for i, e in enumerate(result.errors) if not e]
    np.testing.assert_allclose(np.linalg.norm(result.embeddings[good], axis=1), 1.0, atol=1e-5)


def test_defaults_satisfy_the_protocol(encoders: list[Encoder]) -> None:
    image, text = encoders
    assert isinstance(image, Encoder)
    assert isinstance(text, Encoder)
    assert (image.name, image.modality, image.version, image.dim) == (IMAGE_ENCODER, "image", 1, 64)
    assert (text.name, text.modality, text.version, text.dim) == (TEXT_ENCODER, "text", 1, 32)


def test_image_same_render_same_embedding_and_colours_differ(
    image_encoder: ImageEncoder, entries: list[CatalogueEntry]
) -> None:
    entry = entries[0]
    red = dataclasses.replace(entry, attributes={**entry.attributes, "colour": "red"})
    blue = dataclasses.replace(entry, attributes={**entry.attributes, "colour": "blue"})
    result = image_encoder.encode([render_png(red, 224, 7), render_png(red, 224, 7)])
    again = image_encoder.encode([render_png(blue, 224, 7), render_png(red, 224, 7)])
    _check_good(result, 64)
    assert result.errors == ["", ""]
    np.testing.assert_array_equal(result.embeddings[0], result.embeddings[1])
    np.testing.assert_array_equal(again.embeddings[1], result.embeddings[0])  # deterministic
    assert float(again.embeddings[0] @ again.embeddings[1]) < 0.999  # red vs blue


def test_image_batch_equals_one_by_one_and_bad_items_fail_alone(
    image_encoder: ImageEncoder, entries: list[CatalogueEntry]
) -> None:
    good = [render_png(e, 224, i) for i, e in enumerate(entries[:3])]
    truncated = _png(Image.effect_noise((64, 64), 60).convert("RGB"))[:700]
    bad = {
        1: (b"not an image at all", "not an image"),
        3: (truncated, "truncated image"),
        4: (b"\0" * (50 * 1024 * 1024), "image too large: 52428800 bytes"),
        5: (_png(Image.new("RGB", (1, 1))), "image too small: 1x1"),
        6: (_huge_png_header(), "image too large: 20000x20000 pixels"),
    }
    items = [good[0], bad[1][0], good[1], bad[3][0], bad[4][0], bad[5][0], bad[6][0], good[2]]
    batch = image_encoder.encode(items)
    _check_good(batch, 64)
    for i, (_, reason) in bad.items():
        assert reason in batch.errors[i]
        assert not batch.embeddings[i].any()
    singles = np.stack([image_encoder.encode([g]).embeddings[0] for g in good])
    np.testing.assert_allclose(batch.embeddings[[0, 2, 7]], singles, atol=1e-5)
    assert [batch.errors[i] for i in (0, 2, 7)] == ["", "", ""]


def test_image_pooled_features_fit_a_pca_head(
    image_encoder: ImageEncoder, entries: list[CatalogueEntry]
) -> None:
    items = [render_png(e, 224, i) for i, e in enumerate(entries)] + [b"junk"]
    features, errors = image_encoder.pooled(items)
    assert features.shape == (len(items), 1280)
    assert errors[-1] == "not an image"
    assert not features[-1].any()
    head = fit_pca(features[:-1], 4, version=2)
    embedded = head.apply(features)
    assert embedded.shape == (len(items), 4)
    np.testing.assert_allclose(
        image_encoder.projection.apply(features), image_encoder.encode(items).embeddings, atol=1e-5
    )


def test_image_input_size_and_channels_last_are_options(entries: list[CatalogueEntry]) -> None:
    encoder = ImageEncoder(Projection.identity(1280, version=4), input_size=128, channels_last=True)
    assert (encoder.version, encoder.dim) == (4, 1280)
    result = encoder.encode([render_png(entries[0], 224, 0), b""])
    _check_good(result, 1280)
    assert result.errors == ["", "empty input"]


def test_image_rejects_a_head_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="1280"):
        ImageEncoder(Projection.identity(384))


def test_text_same_title_same_embedding_different_titles_differ(
    text_encoder: TextEncoder,
) -> None:
    result = text_encoder.encode([b"vintage red shoe", b"vintage red shoe", b"modern blue lamp"])
    _check_good(result, 32)
    np.testing.assert_array_equal(result.embeddings[0], result.embeddings[1])
    assert float(result.embeddings[0] @ result.embeddings[2]) < 0.99


def test_text_batch_equals_one_by_one_and_bad_items_fail_alone(
    text_encoder: TextEncoder,
) -> None:
    titles = [b"mug", b"\xff\xfe bad", "caf\u00e9 chair, premium".encode(), b"", b"x" * 2049]
    titles.append(b"a much longer title that needs plenty of padding for the short ones")
    batch = text_encoder.encode(titles)
    assert batch.errors[1] == "invalid UTF-8"
    assert batch.errors[3] == "empty input"
    assert batch.errors[4] == "text too long: 2049 bytes > 2048"
    good = [0, 2, 5]
    assert [batch.errors[i] for i in good] == ["", "", ""]
    _check_good(batch, 32)
    singles = np.stack([text_encoder.encode([titles[i]]).embeddings[0] for i in good])
    np.testing.assert_allclose(batch.embeddings[good], singles, atol=1e-5)


def test_text_identity_head_keeps_the_model_space(text_encoder: TextEncoder) -> None:
    features, errors = text_encoder.features([b"classic red shoe", b"vintage red shoe"])
    assert errors == ["", ""]
    assert features.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    assert float(features[0] @ features[1]) > 0.7  # near-synonymous titles are close


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised CLIP with a byte-level tokenizer, saved to disk."""
    path = tmp_path_factory.mktemp("tiny-clip")
    chars: list[str] = list(bytes_to_unicode().values())  # type: ignore[no-untyped-call]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in chars + [char + "</w>" for char in chars]:
        vocab[token] = len(vocab)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(path)
    layers = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "max_position_embeddings": 77,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
            **layers,
        },
        vision_config={"hidden_size": 32, "image_size": 32, "patch_size": 8, **layers},
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(path)
    return path


def test_tiny_clip_loads_and_encodes(tiny_clip: Path, entries: list[CatalogueEntry]) -> None:
    image, text = load_encoders(clip_path=str(tiny_clip))
    assert isinstance(image, Encoder)
    assert isinstance(text, Encoder)
    assert (image.name, image.dim, image.version) == (IMAGE_ENCODER, 16, 1)
    assert (text.name, text.dim, text.version) == (TEXT_ENCODER, 16, 1)

    pngs = [render_png(entries[0], 64, 0), render_png(entries[1], 64, 1)]
    wide = _png(Image.new("RGB", (80, 40), (20, 200, 20)))
    result = image.encode([pngs[0], b"junk", wide, pngs[1]])
    assert result.errors == ["", "not an image", "", ""]
    _check_good(result, 16)
    single = image.encode([pngs[1]]).embeddings[0]
    np.testing.assert_allclose(result.embeddings[3], single, atol=1e-5)
    assert not np.allclose(result.embeddings[0], result.embeddings[3])

    titles = [b"red shoe", b"\xc3\x28", b"a much longer title for padding"]
    texts = text.encode(titles)
    assert texts.errors == ["", "invalid UTF-8", ""]
    _check_good(texts, 16)
    single = text.encode([titles[2]]).embeddings[0]
    np.testing.assert_allclose(texts.embeddings[2], single, atol=1e-5)

    # a head fitted on EfficientNet's multi-scale features is not a CLIP head
    multiscale = Projection.random(16, 4, features="multiscale")
    assert isinstance(image, ClipImageEncoder)
    with pytest.raises(ValueError, match="CLIP gives 16"):
        ClipImageEncoder(image._clip, multiscale)


def test_multiscale_features_end_with_the_last_layer_and_batch_equals_single(
    image_encoder: ImageEncoder, entries: list[CatalogueEntry]
) -> None:
    items = [render_png(e, 224, i) for i, e in enumerate(entries)] + [b"junk"]
    multiscale = ImageEncoder(features="multiscale")
    features, errors = multiscale.pooled(items)
    assert features.shape == (len(items), FEATURE_DIMS["multiscale"])
    assert errors[-1] == "not an image" and not features[-1].any()
    last, _ = image_encoder.pooled(items)
    np.testing.assert_allclose(features[:, -1280:], last, atol=1e-5)
    singles = np.stack([multiscale.pooled([item])[0][0] for item in items[:3]])
    np.testing.assert_allclose(features[:3], singles, atol=1e-4)
    head = fit_pca(features[:-1], 3, version=2, standardise=True, feature_kind="multiscale")
    served = ImageEncoder(head)
    assert served.features == "multiscale"
    np.testing.assert_allclose(served.encode(items).embeddings, head.apply(features), atol=1e-5)


def test_image_rejects_a_head_for_other_features() -> None:
    head = Projection.random(FEATURE_DIMS["multiscale"], 4, features="multiscale")
    with pytest.raises(ValueError, match="but the head's are"):
        ImageEncoder(head, features="last")
    with pytest.raises(ValueError, match="features must be"):
        ImageEncoder(features="penultimate")
    lying = Projection.random(1280, 4, features="multiscale")
    with pytest.raises(ValueError, match="3120"):
        ImageEncoder(lying)
    with pytest.raises(ValueError, match="MiniLM"):
        TextEncoder(Projection.random(384, 4, features="multiscale"))
