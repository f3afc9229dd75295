"""Tags and descriptions from the real EfficientNet-Lite0 in-process, and the pure helpers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter
from sklearn.datasets import load_sample_image

from encoder_server.description import Description, Tag
from encoder_server.serving.describe import describe_batch, describes
from encoder_server.serving.image_encoder import ImageEncoder
from encoder_server.serving.tags import imagenet_labels, top_tags, zero_shot_probs
from encoder_server.serving.text_encoder import TextEncoder


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def encoder() -> ImageEncoder:
    return ImageEncoder()


def test_imagenet_labels_in_index_order() -> None:
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert labels[0] == "tench" and labels[817] == "sports car" and labels[985] == "daisy"


def test_top_tags_and_zero_shot() -> None:
    assert top_tags(np.array([0.2, 0.5, 0.3]), ["a", "b", "c"], 2) == (Tag("b", 0.5), Tag("c", 0.3))
    with pytest.raises(ValueError, match="labels"):
        top_tags(np.array([1.0]), ["a", "b"])
    images = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    labels = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    probs = zero_shot_probs(images, labels)
    assert probs.argmax(axis=1).tolist() == [1, 0]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_description_round_trips_and_refuses_garbage() -> None:
    d = Description((Tag("daisy", 0.15),), {"colour": "red", "scale": 0.25})
    assert Description.from_json(d.to_json()) == d
    for bad in ("", "[]", '{"tags": 3}'):
        with pytest.raises(ValueError):
            Description.from_json(bad)


def test_a_photograph_is_tagged_by_the_backbones_head(encoder: ImageEncoder) -> None:
    flower = _png(Image.fromarray(load_sample_image("flower.jpg")))
    encoded, (description,) = encoder.describe([flower])
    assert description is not None
    assert description.tags[0].label == "daisy"  # docs/measurements.md: p = 0.15
    assert len(description.tags) == 5
    scores = [t.score for t in description.tags]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
    # the embedding is exactly the one encode() gives: same forward pass
    np.testing.assert_allclose(encoded.embeddings, encoder.encode([flower]).embeddings, atol=1e-6)


def test_describe_batch_fails_a_bad_item_alone(encoder: ImageEncoder) -> None:
    red = Image.new("RGB", (224, 224), (235, 235, 235))
    red.paste((205, 40, 45), (62, 62, 162, 162))
    blurred = red.filter(ImageFilter.GaussianBlur(4))
    encoded, texts = describe_batch(encoder, [_png(red), b"not an image", _png(blurred)])
    assert encoded.errors[0] == "" and encoded.errors[1] and texts[1] == ""
    sharp, soft = (Description.from_json(texts[i]) for i in (0, 2))
    assert sharp.attributes["colour"] == "red" and sharp.tag_source == "imagenet"
    assert float(soft.attributes["sharpness"]) < float(sharp.attributes["sharpness"])


def test_only_image_encoders_with_a_head_describe(encoder: ImageEncoder) -> None:
    assert describes(encoder)
    assert not describes(TextEncoder())
