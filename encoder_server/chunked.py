"""One batch loop for every encoder: parse each item, fail it alone, run the rest in chunks.

Every encoder (EfficientNet, MiniLM, both CLIP towers) does the same three
things with a Triton batch: parse each item (decode an image, a UTF-8
title), turn a parse error into that row's error string, and run the good
items through the network ``max_batch`` at a time, since one oversized
forward pass is slower per item on a small CPU and bounds memory on any.
Written once here, the per-item failure rule cannot drift between encoders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["run_chunked"]

T = TypeVar("T")
Features = npt.NDArray[np.float32]


def run_chunked(
    items: Sequence[bytes],
    parse: Callable[[bytes], T],
    forward: Callable[[list[T]], Features],
    dim: int,
    max_batch: int,
) -> tuple[Features, list[str]]:
    """Features ``[n, dim]`` (zero rows where parsing failed) and one error string per item.

    ``parse`` raises :class:`ValueError` (``BadImage`` is one) for a bad item;
    ``forward`` maps at most ``max_batch`` parsed items to their feature rows.

    >>> feats, errors = run_chunked(
    ...     [b"2", b"x", b"3"],
    ...     parse=lambda b: float(b.decode()),
    ...     forward=lambda xs: np.array([[x, x * x] for x in xs], dtype=np.float32),
    ...     dim=2,
    ...     max_batch=1,
    ... )
    >>> feats.tolist(), errors
    ([[2.0, 4.0], [0.0, 0.0], [3.0, 9.0]], ['', "could not convert string to float: 'x'", ''])
    """
    features = np.zeros((len(items), dim), dtype=np.float32)
    errors = [""] * len(items)
    good: list[int] = []
    parsed: list[T] = []
    for i, data in enumerate(items):
        try:
            parsed.append(parse(bytes(data)))
            good.append(i)
        except ValueError as exc:
            errors[i] = str(exc)
    step = max(1, max_batch)
    for start in range(0, len(good), step):
        features[good[start : start + step]] = forward(parsed[start : start + step])
    return features, errors
