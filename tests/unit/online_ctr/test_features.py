"""Features: sparse one-hot dicts, stable hashing, crosses and the embedding slot."""

from __future__ import annotations

import math
import random

import pytest

from online_ctr.features import (
    DEFAULT_SPEC,
    IMAGE_PREFIX,
    MAX_AUDIENCE_FIELDS,
    TITLE_PREFIX,
    AudienceFields,
    FeatureSpec,
    bucket,
    embedding_feature_names,
    featurize,
    id_features,
    position_bucket,
    position_features,
    segment_features,
    title_tokens,
    word_features,
)
from schemas import Impression, LabelledImpression

NOON_UTC = 1_767_268_800.0  # 2026-01-01T12:00:00Z


def imp(
    position: int = 4, ts: float = NOON_UTC, title: str = "Red shoe", **segment: str
) -> Impression:
    return Impression(
        event_id="e1",
        impression_id="i1",
        ts=ts,
        item_id="sku-1",
        image_id="img",
        variant="v2",
        title=title,
        position=position,
        segment={"device": "mobile", "geo": "DE", "taste": "t1", **segment},
    )


def test_one_hot_context() -> None:
    x = featurize(imp(age="30s"))
    assert x["seg.device=mobile"] == x["seg.geo=DE"] == x["seg.taste=t1"] == 1.0
    assert x["seg.age=30s"] == 1.0  # extra segment keys become features too
    assert x["pos=3"] == 1.0 and x["pos_decay"] == pytest.approx(1 / 5)
    assert x["pos_log"] == pytest.approx(math.log(5))
    assert x["hour=12"] == 1.0 and x["hour_cos"] == pytest.approx(-1.0)
    assert x["seg.device=mobile&hour_cos"] == pytest.approx(-1.0)
    assert all(isinstance(v, float) and math.isfinite(v) for v in x.values())


def test_hour_is_utc_from_ts() -> None:
    assert "hour=23" in featurize(imp(ts=NOON_UTC + 11 * 3600 + 59 * 60))
    assert "hour=0" in featurize(imp(ts=NOON_UTC + 12 * 3600))


def test_ids_are_hashed_stably() -> None:
    """Fixed values: a change of hash function would silently orphan every weight."""
    assert bucket("sku-1") == 43469
    assert bucket("sku-1/v2") == 99660
    x = featurize(imp())
    assert x["item=43469"] == 1.0 and x["var=99660"] == 1.0
    assert bucket("sku-2") != bucket("sku-1")
    assert all(0 <= bucket(f"id-{i}", 64) < 64 for i in range(200))


def test_crosses_follow_the_spec() -> None:
    x = featurize(imp())  # auto: the producer's fields, not the required device and geo
    assert x["seg.taste=t1&var=99660"] == x["seg.taste=t1&item=43469"] == 1.0
    assert "seg.geo=DE&var=99660" not in x and "seg.device=mobile&item=43469" not in x
    assert x["seg.taste=t1&w=shoe"] == 1.0 and "seg.device=mobile&w=shoe" not in x
    before = featurize(imp(), spec=FeatureSpec.from_setting("device=ids,taste"))
    assert (
        before["seg.device=mobile&item=43469"] == 1.0 and "seg.device=mobile&w=shoe" not in before
    )
    every = featurize(imp(), spec=FeatureSpec(id_cross_fields=None, token_cross_fields=None))
    assert every["seg.geo=DE&var=99660"] == every["seg.geo=DE&w=red"] == 1.0
    bare = featurize(imp(), spec=FeatureSpec(id_cross_fields=(), token_cross_fields=()))
    assert not any("&" in k and "hour" not in k for k in bare)


def test_content_cross_setting() -> None:
    assert FeatureSpec.from_setting("auto") == DEFAULT_SPEC and DEFAULT_SPEC.auto
    old = FeatureSpec.from_setting(" device=ids , taste ", 7)
    assert old == FeatureSpec(("device", "taste"), ("taste",), ("taste",), auto_max_values=7)
    assert not old.auto
    nothing = featurize(imp(), spec=FeatureSpec.from_setting(""))
    assert not any("&" in k and "hour" not in k for k in nothing)
    with pytest.raises(ValueError, match="name=ids"):
        FeatureSpec.from_setting("taste=tokens")


def test_auto_crosses_follow_the_counted_fields() -> None:
    x = featurize(imp(cohort="c1"), auto_fields={"cohort"})
    assert x["seg.cohort=c1&item=43469"] == x["seg.cohort=c1&w=shoe"] == 1.0
    assert not any(k.startswith("seg.taste=t1&") for k in x)
    explicit = featurize(imp(cohort="c1"), spec=FeatureSpec(("taste",)), auto_fields={"cohort"})
    assert "seg.taste=t1&item=43469" in explicit and "seg.cohort=c1&item=43469" not in explicit


def test_audience_fields_are_bounded() -> None:
    fields = AudienceFields(max_values=3)
    fields.observe({"device": "mobile", "geo": "DE", "cohort": "a", "constant": "x"})
    assert fields.crossed == frozenset()  # one value says nothing about who is looking
    for value in ("b", "c", "b"):
        fields.observe({"device": value, "geo": value, "cohort": value, "constant": "x"})
    assert fields.crossed == {"cohort"}  # device and geo are context
    fields.observe({"cohort": "d"})
    fields.observe({"cohort": "a"})
    assert fields.crossed == frozenset()  # past the bound: never crossed again
    for i in range(2 * MAX_AUDIENCE_FIELDS):
        fields.observe({f"f{i}": "a"})
        fields.observe({f"f{i}": "b"})
    assert len(fields.crossed) == MAX_AUDIENCE_FIELDS - 2  # cohort and constant hold a place


def test_title_tokens() -> None:
    assert title_tokens("Bold RED shoe, red! a") == ["bold", "red", "shoe"]
    assert len(title_tokens(" ".join(f"w{i}" for i in range(100)))) == 16
    assert featurize(imp(title=""))["pos=3"] == 1.0


def test_position_buckets() -> None:
    assert [position_bucket(p) for p in (0, 1, 2, 3, 4, 5, 7, 8, 12, 13, 10_000)] == [
        0, 1, 2, 3, 3, 5, 5, 8, 8, 13, 13,
    ]  # fmt: skip


def test_no_embedding_features_without_embeddings() -> None:
    assert not any(k.startswith(("img_", "txt_")) for k in featurize(imp()))


def test_embedding_slot() -> None:
    image = [0.5, -0.5] + [0.01] * 10
    x = featurize(imp(), image_embedding=image, title_embedding=[0.1, float("nan")])
    assert x["img_0"] == 0.5 and x["img_1"] == -0.5 and x["img_11"] == 0.01
    assert x["img_0&seg.taste=t1"] == 0.5 and x["img_1&seg.taste=t1"] == -0.5
    assert "img_1&seg.device=mobile" not in x  # by default the image crosses taste only
    assert "img_8&seg.taste=t1" not in x  # only the first 8 dimensions are crossed
    assert x["txt_0"] == 0.1 and "txt_1" not in x  # non-finite values are dropped
    assert not any(k.startswith("txt_") and "&" in k for k in x)  # titles uncrossed
    every = FeatureSpec(
        embedding_cross_fields=None, embedding_crosses=1, title_embedding_cross_fields=("geo",)
    )
    y = featurize(imp(), image_embedding=image, title_embedding=[0.1], spec=every)
    assert sorted(k for k in y if "&" in k and k.startswith(("img_", "txt_"))) == [
        "img_0&seg.device=mobile",
        "img_0&seg.geo=DE",
        "img_0&seg.taste=t1",
        "txt_0&seg.geo=DE",
    ]


def test_labelled_impressions_featurize_like_impressions() -> None:
    labelled = LabelledImpression.from_impression(
        imp(), clicked=True, click_delay_s=3.0, late=False, labelled_at=NOON_UTC
    )
    assert featurize(labelled) == featurize(imp())


@pytest.mark.parametrize(
    "spec",
    [
        DEFAULT_SPEC,
        FeatureSpec.from_setting("device=ids,taste"),
        FeatureSpec(None, None, None, 3, ("geo",)),
        FeatureSpec((), (), ()),
    ],
)
def test_the_parts_of_a_request_add_up_to_featurize(spec: FeatureSpec) -> None:
    """The scoring API's batch path builds features from these parts: they must be the dict."""
    rng = random.Random(5)
    words = ["red", "blue", "shoe", "a", "Lamp", "x1", "mug&co"]
    for n in range(200):
        segment = {"device": rng.choice(["mobile", "desk&top"]), "geo": rng.choice(["DE", "FR"])}
        segment.update({f"f{k}": rng.choice(["a", "b c", "d&w"]) for k in range(rng.randrange(3))})
        auto = rng.choice([None, frozenset(), frozenset(segment) - {"geo"}])
        title = " ".join(rng.choice(words) for _ in range(rng.randrange(5)))
        position = rng.choice([0, 1, 4, 9, 13, 10_000])
        ts = NOON_UTC + rng.randrange(48) * 1800
        image = [rng.choice([rng.gauss(0, 1), float("nan")]) for _ in range(rng.randrange(12))]
        title_vec = [rng.gauss(0, 1) for _ in range(rng.randrange(4))]
        impression = Impression(
            event_id="e", impression_id="i", ts=ts, item_id=f"sku-{n % 7}", image_id="img",
            variant=f"v{n % 3}", title=title, position=position, segment=segment,
        )  # fmt: skip
        expected = featurize(impression, image, title_vec or None, spec, auto)

        seg = segment_features(segment, ts, spec, auto)
        item, variant = id_features(impression.item_id, impression.variant)
        parts = [*seg.shared, (item, 1.0), (variant, 1.0)]
        parts += [(w, 1.0) for w in word_features(title)]
        parts += [(f"{s}&{f}", 1.0) for s in seg.id_crossed for f in (item, variant)]
        parts += [(f"{s}&{w}", 1.0) for s in seg.token_crossed for w in word_features(title)]
        parts += position_features(position)
        for prefix, vector, crossed in (
            (IMAGE_PREFIX, image, seg.image_crossed),
            (TITLE_PREFIX, title_vec, seg.title_crossed),
        ):
            names = embedding_feature_names(prefix, len(vector), crossed, seg.embedding_crosses)
            for value, dim in zip(vector, names, strict=True):
                if math.isfinite(value):
                    parts += [(name, value) for name in dim]
        assert dict(parts) == expected
        assert len(parts) == len(expected)  # no feature in two parts: a sum counts each once
