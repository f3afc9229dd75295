"""Plain data for the report's sections: what a short simulated run leaves in Redis."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from api.series import CtrSeriesData, ImageCell, ImageRanking, ScopeSeries
from bertctr.report.data import (
    AbArm,
    AbItem,
    DriversGrid,
    EncoderHistory,
    ImagesData,
    NeData,
    ReliabilityBand,
    ReportData,
    Unavailable,
)


def _series(name: str, imps: list[int], clicks: list[int]) -> ScopeSeries:
    return ScopeSeries(
        name=name,
        impressions=imps,
        clicks=clicks,
        ctr=[c / n if n else None for c, n in zip(clicks, imps, strict=True)],
        window_impressions=sum(imps),
        window_clicks=sum(clicks),
        window_ctr=sum(clicks) / sum(imps) if sum(imps) else None,
    )


def png_bytes(color: str = "red", size: tuple[int, int] = (300, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def ctr_data() -> CtrSeriesData:
    minutes = 30
    a = _series("device=mobile,geo=DE", [40] * minutes, [2, 1] * (minutes // 2))
    b = _series("device=desktop,geo=<b>US</b>", [30] * minutes, [1, 0, 3] * (minutes // 3))
    total = _series("all segments", [70] * minutes, [3, 1, 5] * (minutes // 3))
    return CtrSeriesData(
        by="segment",
        view="live",
        item=None,
        clock=1_767_225_600.0 + 60 * minutes,
        minutes=minutes,
        t=[1_767_225_600.0 + 60 * i for i in range(minutes)],
        series=[a, b],
        total=total,
    )


def _cell(item: str, image: str | None, imps: int, clicks: int) -> ImageCell:
    return ImageCell(item, "v0", image, f"title of {item}", imps, clicks, clicks / imps, 0.05)


@pytest.fixture
def full_data(ctr_data: CtrSeriesData) -> ReportData:
    ranking = ImageRanking(
        segment=None,
        view="live",
        min_impressions=10,
        prior_strength=100.0,
        prior_ctr=0.04,
        items_considered=3,
        candidates=3,
        top=[_cell("item-1", "img-1", 500, 40)],
        bottom=[_cell("item-2", "img-2", 400, 4), _cell("item-3", None, 300, 2)],
    )
    return ReportData(
        title="test <report>",
        generated_at=1_767_230_000.0,
        window="everything kept",
        redis_prefix="test:report:",
        ctr=ctr_data,
        ne=NeData(
            points=[{"t": 1.0 + i, "count": 100 * i, "ne": 1.0 - 0.01 * i} for i in range(1, 20)],
            oracle=[(100 * i, 0.9) for i in range(1, 20)],
            latest_ne=0.81,
        ),
        reliability=[
            ReliabilityBand(0.01, 0.012, 500.0),
            ReliabilityBand(0.05, 0.045, 900.0),
            ReliabilityBand(0.2, 0.25, 40.0),
        ],
        images=ImagesData(ranking=ranking, images={"img-1": png_bytes(), "img-2": b"not a png"}),
        ab=[
            AbItem(
                "item-1",
                "keep_testing",
                "keep testing",
                [
                    AbArm("v0", 1000, 30, 31.0, 971.0, 0.2, is_control=True),
                    AbArm("v1", 1000, 45, 46.0, 956.0, 0.8, uplift=0.5),
                ],
            ),
            AbItem("item-9", "no_data", "one arm", [AbArm("v0", 10, 1, 2.0, 10.0, 1.0)]),
        ],
        encoder=EncoderHistory(
            status={
                "champion": "image_encoder",
                "champion_version": 1,
                "challenger": None,
                "decisions": [
                    {
                        "decision": "retire",
                        "reason": "not better",
                        "at": 1_767_229_000.0,
                        "champion": "image_encoder",
                        "challenger": "image_encoder_v2",
                        "n": 5000,
                        "mean": -0.001,
                        "lo": -0.003,
                        "hi": 0.0004,
                    }
                ],
            },
            counts={"promote": 0, "retire": 1},
            finetune={"until": 1_767_228_000.0, "version": 2, "outcome": "published", "at": 5.0},
        ),
        drivers=DriversGrid(
            groups=["taste=t0", "taste=t1"],
            attributes=["brightness", "banner"],
            effects=[[0.3, None], [-0.2, 0.05]],
            significant=[[True, False], [True, False]],
        ),
        ope=[{"policy": "model", "estimate": 0.041, "ci_low": 0.038}],
        quality=[{"segment": "device=mobile", "ne": 0.93, "flags": ["miscalibrated"]}],
    )


@pytest.fixture
def empty_data() -> ReportData:
    why = Unavailable("nothing under this prefix")
    return ReportData(
        title="empty",
        generated_at=0.0,
        window="everything kept",
        redis_prefix="test:report:empty:",
        ctr=why,
        ne=why,
        reliability=why,
        images=why,
        ab=why,
        encoder=why,
    )
