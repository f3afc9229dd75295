"""The publish gate: whether a fine-tuned head has earned a new encoder version.

Separate from training because it is policy, not optimisation: the job
(:mod:`bertctr.finetune`) and the benchmark apply the same rule to a
:class:`~encoder_server.training.result.FinetuneResult`, and the rule's reasons are
what the job prints when it refuses (non-zero exit).
"""

from __future__ import annotations

import math

from encoder_server.training.result import FinetuneResult

__all__ = ["should_publish"]


def should_publish(
    result: FinetuneResult,
    min_clicks: int,
    min_improvement: float = 0.0,
    *,
    z: float = 2.0,
) -> tuple[bool, str]:
    """Whether a fine-tuned head has earned a new encoder version, and why.

    A new version is not free: every embedding changes, the cache namespace
    starts cold and the online model relearns its crossed weights. So the
    head must (1) have been trained on at least ``min_clicks`` clicks (the
    training split's), (2) have improved on its starting point on the
    validation split at all (best epoch > 0: otherwise it *is* the starting
    point, and any held-out "gain" is float rounding), (3) lower the
    held-out log loss below the better of ``before`` and ``recalibrated`` by
    more than ``min_improvement`` nats per example, and (4) by more than
    ``z`` standard errors of the paired per-example difference: the held-out
    set is one draw of later traffic, and an improvement inside its noise is
    not evidence.
    """
    clicks = result.splits["train"].clicks
    if clicks < min_clicks:
        return False, f"only {clicks} clicks in the training split; at least {min_clicks} needed"
    if result.best_epoch == 0:
        return False, (
            "the head never beat its starting point on the validation split "
            f"(best epoch 0 of {len(result.curve) - 1})"
        )
    ref = result.before if result.reference == "before" else result.recalibrated
    gain, se = result.improvement, result.improvement_se
    numbers = (
        f"held-out log loss {result.after.log_loss:.5f} with the head vs "
        f"{ref.log_loss:.5f} {result.reference} (offset only: {result.before.log_loss:.5f})"
    )
    if not gain > min_improvement:
        return False, f"no improvement: {numbers}; gain {gain:.5f} <= {min_improvement:.5f}"
    if not gain > z * se:
        return False, f"improvement within noise: gain {gain:.5f} <= {z:g} x SE {se:.5f}; {numbers}"
    sigmas = gain / se if se > 0 else math.inf
    return True, f"publish: {numbers}; gain {gain:.5f} nats/example ({sigmas:.1f} SE)"
