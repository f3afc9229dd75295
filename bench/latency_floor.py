"""The floor of click -> counter latency: consume and mark, nothing else.

Run by ``bench_pipeline.py`` as its own process (as a worker is): a batched
aiokafka consumer on ``impressions`` and ``clicks`` that, for every click,
decodes it with the project's decoder and sets its live dedup marker in Redis
(one pipeline per poll). No join, no labels, no learner: what is left of the
latency here is the broker, Redis and the measuring, not bertctr.

Run: ``python bench/latency_floor.py BOOTSTRAP REDIS_URL TOPIC_PREFIX REDIS_PREFIX``
"""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from schemas import Click
from schemas.keys import KeySpace
from schemas.topics import CLICKS, IMPRESSIONS, full_name
from streams.kafka.decode import DecodeError, decode


async def run(bootstrap: str, redis_url: str, topic_prefix: str, redis_prefix: str) -> None:
    keys = KeySpace(redis_prefix)
    clicks = full_name(topic_prefix, CLICKS)
    client = aioredis.Redis.from_url(redis_url)
    consumer = AIOKafkaConsumer(
        full_name(topic_prefix, IMPRESSIONS),
        clicks,
        bootstrap_servers=bootstrap,
        group_id=f"{topic_prefix}latency-floor",
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=500)
            async with client.pipeline(transaction=False) as pipe:
                marked = 0
                for tp, records in batch.items():
                    if tp.topic != clicks:
                        continue
                    for record in records:
                        try:
                            click = decode(Click, record.value, record.key, keyed=True)
                        except DecodeError:
                            continue
                        pipe.set(keys.seen_live(click.impression_id, "click"), 1, ex=600)
                        marked += 1
                if marked:
                    await pipe.execute()
    finally:
        await consumer.stop()
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(run(*sys.argv[1:5]))
