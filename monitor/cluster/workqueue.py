"""The shared crawl frontier: a reliable Redis queue with a shared dupefilter.

As in scrapy-redis, every crawler takes from one request list and one fingerprint set decides
what was seen. Unlike scrapy-redis, a taken task is not gone: take() moves it atomically into the
consumer's own processing list, done() removes it there, and when a consumer stops beating its
heartbeat, recover() moves what it held back to the head of the queue. Delivery is therefore at
least once: a task whose consumer died (or stalled past its ttl) is taken again.

Keys (the name sits in a hash tag so that a script's keys share one cluster slot):
  {prefix}queue:{name}                  the list of queued tasks (taken from the left)
  {prefix}queue:{name}:seen             the fingerprint set
  {prefix}queue:{name}:consumers        the consumers that may hold tasks
  {prefix}queue:{name}:processing:C     what consumer C took and has not marked done
  {prefix}queue:{name}:alive:C          C's heartbeat, expiring after ttl
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

# A fingerprint is only ever added together with its task: both in one script, or neither.
_PUSH = """
local queued = 0
for i = 1, #ARGV, 2 do
    if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then
        redis.call('RPUSH', KEYS[2], ARGV[i + 1])
        queued = queued + 1
    end
end
return queued
"""

# One task back from a dead consumer's tail to the queue's head (so the queue keeps the order it
# was taken in). Checking the heartbeat inside the script means a consumer that came back to
# life is left alone, and two recoverers never move one task twice: LMOVE pops it.
_RECOVER_ONE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return false
end
return redis.call('LMOVE', KEYS[2], KEYS[3], 'RIGHT', 'LEFT')
"""

# Unregister a consumer only when it is dead and holds nothing any more.
_FORGET_CONSUMER = """
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('LLEN', KEYS[2]) == 0 then
    return redis.call('SREM', KEYS[3], ARGV[1])
end
return 0
"""

_PUSH_BATCH = 500  # items per script call: one call blocks the server while it runs


@dataclass(frozen=True)
class Task:
    """A queued item: its dupefilter key, its payload, and the stored text done() removes."""

    key: str
    payload: dict
    raw: str


def encode_task(key: str, payload: dict[str, Any]) -> str:
    return json.dumps({"key": key, "payload": payload}, ensure_ascii=False, separators=(",", ":"))


def decode_task(raw: str | bytes) -> Task:
    text = raw.decode() if isinstance(raw, bytes) else raw
    stored = json.loads(text)
    return Task(key=stored["key"], payload=stored["payload"], raw=text)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class WorkQueue:
    """Queue `name` as seen by `consumer`, which counts as alive for `ttl` seconds per beat."""

    def __init__(self, redis: Redis, name: str, consumer: str, ttl: float = 30.0,
                 prefix: str = "monitor:") -> None:
        if ttl <= 0:
            raise ValueError(f"a work queue's ttl must be positive, not {ttl}")
        if not name or not consumer:
            raise ValueError("a work queue needs a non-empty name and consumer")
        self.redis = redis
        self.name = name
        self.consumer = consumer
        self.ttl = ttl
        self.base = f"{prefix}queue:{{{name}}}"
        self.queue_key = self.base
        self.seen_key = f"{self.base}:seen"
        self.consumers_key = f"{self.base}:consumers"
        self._push = redis.register_script(_PUSH)
        self._recover_one = redis.register_script(_RECOVER_ONE)
        self._forget_consumer = redis.register_script(_FORGET_CONSUMER)

    def processing_key(self, consumer: str) -> str:
        return f"{self.base}:processing:{consumer}"

    def alive_key(self, consumer: str) -> str:
        return f"{self.base}:alive:{consumer}"

    async def push(self, items: Iterable[tuple[str, dict]]) -> int:
        """Queue each (key, payload) whose key the fingerprint set has not seen; how many queued."""
        queued = 0
        batch: list[str] = []
        for key, payload in items:
            batch += [key, encode_task(key, payload)]
            if len(batch) >= 2 * _PUSH_BATCH:
                queued += await self._push_batch(batch)
                batch = []
        if batch:
            queued += await self._push_batch(batch)
        return queued

    async def _push_batch(self, batch: list[str]) -> int:
        return int(await self._push(keys=[self.seen_key, self.queue_key], args=batch))

    async def take(self, limit: int, timeout: float = 1.0) -> list[Task]:
        """Move up to `limit` tasks into this consumer's processing list; wait up to `timeout`
        seconds for the first (0: do not wait). Beats the heartbeat first, so the consumer is
        registered before it holds anything recover() would have to find."""
        if limit < 1:
            raise ValueError(f"take() needs a limit of at least 1, not {limit}")
        first = await self._take_first(timeout)
        if first is None:
            return []
        processing = self.processing_key(self.consumer)
        taken = [first]
        while len(taken) < limit:
            raw = await self.redis.lmove(self.queue_key, processing, "LEFT", "RIGHT")
            if raw is None:
                break
            taken.append(raw)
        return [decode_task(raw) for raw in taken]

    async def _take_first(self, timeout: float) -> bytes | str | None:
        """Wait in slices of at most half a ttl, beating before each: a consumer's heartbeat must
        not lapse while it waits, or recover() could unregister it just before the task lands in
        its processing list, where nobody would look for it after a crash."""
        processing = self.processing_key(self.consumer)
        deadline = time.monotonic() + timeout
        while True:
            await self.heartbeat()
            left = deadline - time.monotonic()
            if left <= 0:
                return await self.redis.lmove(self.queue_key, processing, "LEFT", "RIGHT")
            wait = max(0.01, min(left, self.ttl / 2))
            first = await self.redis.blmove(self.queue_key, processing, wait, "LEFT", "RIGHT")
            if first is not None or time.monotonic() >= deadline:
                return first

    async def done(self, tasks: Iterable[Task], forget: bool = False) -> None:
        """Drop finished tasks from the processing list; with `forget`, their keys from the
        fingerprint set too, so the same key can be pushed again."""
        tasks = list(tasks)
        if not tasks:
            return
        processing = self.processing_key(self.consumer)
        async with self.redis.pipeline(transaction=True) as pipe:
            for task in tasks:
                pipe.lrem(processing, 1, task.raw)
            if forget:
                pipe.srem(self.seen_key, *{task.key for task in tasks})
            await pipe.execute()

    async def heartbeat(self) -> None:
        """This consumer is alive for ttl seconds from now."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.alive_key(self.consumer), "1", px=max(1, round(self.ttl * 1000)))
            pipe.sadd(self.consumers_key, self.consumer)
            await pipe.execute()

    async def recover(self) -> int:
        """Put back every task held by a registered consumer whose heartbeat is gone."""
        moved = 0
        for consumer in sorted(_text(c) for c in await self.redis.smembers(self.consumers_key)):
            moved += await self._recover_consumer(consumer)
        return moved

    async def _recover_consumer(self, consumer: str) -> int:
        alive, processing = self.alive_key(consumer), self.processing_key(consumer)
        moved = 0
        while await self._recover_one(keys=[alive, processing, self.queue_key]) is not None:
            moved += 1
        await self._forget_consumer(keys=[alive, processing, self.consumers_key], args=[consumer])
        return moved

    async def size(self) -> int:
        """Tasks waiting in the queue."""
        return int(await self.redis.llen(self.queue_key))

    async def in_flight(self) -> int:
        """Tasks taken by any registered consumer and not yet done."""
        consumers = [_text(c) for c in await self.redis.smembers(self.consumers_key)]
        if not consumers:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for consumer in consumers:
                pipe.llen(self.processing_key(consumer))
            return sum(int(n) for n in await pipe.execute())
