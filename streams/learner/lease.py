"""The learner lease: at most one worker learns the model at a time.

One model across N workers is kept by learning it in one place: the join
and the counters scale out by partition, while the worker holding this lease
reads *every* ``labelled`` partition into the one model (see
:mod:`streams.learner.feed`). The other workers stand by and bid again
whenever the lease is free; the holder renews it every third of
``BERTCTR_LEARNER_LEASE_S``, so a crashed holder is replaced that long after
its last renewal.

The lease is a Redis key holding the holder's token, set with ``NX`` and an
expiry; renewal and release are Lua scripts that touch the key only while it
still holds the caller's token, so a worker that stalled past its expiry
cannot renew or delete a successor's lease. Each take increments an epoch,
written into the holder's checkpoints, so which holder wrote what stays
visible. Learning only ever goes on from the newest checkpoint: a holder that
finds its lease gone stops, drops its model and saves nothing more
(:meth:`LearnerLease.renew` returns ``False``), and whoever holds the lease
next starts from the checkpoint, replaying what came after it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import redis.asyncio as aioredis

from schemas.keys import KeySpace

__all__ = ["LearnerLease", "LeaseLost"]

log = logging.getLogger(__name__)

#: extend the lease only while it holds our token
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: delete the lease only while it holds our token
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: take a free lease and count the epoch, in one step
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""


class LeaseLost(RuntimeError):
    """This learner no longer holds the lease: what it holds must not be saved."""


class LearnerLease:
    """A worker's bid for the learner lease (see the module docstring).

    ``owner`` names the bidder in the token (and so in the logs and in
    ``bertctr stats``); a random suffix makes every take distinct, so a
    restarted worker with the same name never mistakes a lease its previous
    life held for its own.
    """

    def __init__(self, client: aioredis.Redis, keys: KeySpace, owner: str, ttl_s: float) -> None:
        self.client = client
        self.keys = keys
        self.owner = owner
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.token = ""
        #: the epoch of the lease held (0 when none)
        self.epoch = 0

    @property
    def held(self) -> bool:
        """Whether this bidder believes it holds the lease (as of its last call)."""
        return self.epoch > 0

    async def acquire(self) -> bool:
        """Take the lease if it is free; ``True`` if this bidder now holds it."""
        if self.held:
            return await self.renew()
        token = f"{self.owner}/{uuid.uuid4().hex[:12]}"
        result: Any = await self.client.eval(
            _ACQUIRE, 2, self.keys.learner_lease, self.keys.learner_epoch, token, self.ttl_ms
        )
        epoch = int(result or 0)
        if epoch:
            self.token, self.epoch = token, epoch
            log.warning("took the learner lease (epoch %d) as %s", epoch, token)
        return bool(epoch)

    async def renew(self) -> bool:
        """Extend the lease; ``False`` (and no longer held) if it was lost."""
        if not self.held:
            return False
        result: Any = await self.client.eval(
            _RENEW, 1, self.keys.learner_lease, self.token, self.ttl_ms
        )
        if not int(result or 0):
            log.error("lost the learner lease (epoch %d, %s)", self.epoch, self.token)
            self.token, self.epoch = "", 0
            return False
        return True

    async def release(self) -> None:
        """Give the lease up (a clean stop), so a standby need not wait for it to expire."""
        if not self.held:
            return
        await self.client.eval(_RELEASE, 1, self.keys.learner_lease, self.token)
        log.info("released the learner lease (epoch %d)", self.epoch)
        self.token, self.epoch = "", 0

    async def holder(self) -> str | None:
        """The token of whoever holds the lease now (``None``: free)."""
        value: Any = await self.client.get(self.keys.learner_lease)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)
