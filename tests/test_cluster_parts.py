"""The cluster's Redis building blocks against a real redis-server: the lease, the reliable work
queue with its shared dupefilter, stream consumer groups, members and shard owners. Dead processes
are simulated by letting a heartbeat expire, and once by SIGKILLing a real one."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from monitor.cluster.lease import Lease
from monitor.cluster.members import Members, owned, owner, shard_of
from monitor.cluster.streams import StreamGroup, add
from monitor.cluster.workqueue import WorkQueue

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def with_redis(url: str, body: Callable[[Redis], Awaitable[T]]) -> T:
    """Run `body` with a fresh client in a fresh event loop, as each process of the cluster would."""
    async def main() -> T:
        client = Redis.from_url(url)
        try:
            return await body(client)
        finally:
            await client.aclose()
    return asyncio.run(main())


def items(*keys: str) -> list[tuple[str, dict[str, Any]]]:
    return [(key, {"url": f"https://example.se/{key}", "n": i}) for i, key in enumerate(keys)]


# --- lease --------------------------------------------------------------------------------------


def test_a_lease_has_one_holder_and_only_the_holder_renews_it(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        first = Lease(client, "monitor:lease:scheduler", "first", ttl=5)
        second = Lease(client, "monitor:lease:scheduler", "second", ttl=5)
        assert await first.acquire()
        assert await first.acquire(), "the holder acquiring again keeps (renews) its lease"
        assert not await second.acquire()
        assert not await second.renew()
        assert await first.renew()
        assert await first.holder() == "first"
        await second.release()  # not the holder: changes nothing
        assert await first.holder() == "first"
        await first.release()
        assert await first.holder() is None
        assert await second.acquire()
        assert await second.holder() == "second"
    with_redis(redis_url, body)


def test_a_standby_takes_the_lease_when_the_holder_stops_renewing_and_not_before(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        holder = Lease(client, "monitor:lease:scheduler", "holder", ttl=1.0)
        standby = Lease(client, "monitor:lease:scheduler", "standby", ttl=1.0)
        assert await holder.acquire()
        renewing_until = time.monotonic() + 3.0
        while time.monotonic() < renewing_until:  # three ttls of renewing: the standby never gets in
            assert await holder.renew()
            assert not await standby.acquire()
            await asyncio.sleep(0.2)
        stopped = time.monotonic()  # the holder dies: it renews no more
        while not await standby.acquire():
            assert time.monotonic() - stopped < 1.5, "the standby waited longer than a ttl"
            await asyncio.sleep(0.05)
        assert time.monotonic() - stopped > 0.5, "the standby got the lease while it was still held"
        assert await standby.holder() == "standby"
        assert not await holder.renew(), "a holder that lost the lease must learn it on renewal"
        await holder.release()
        assert await standby.holder() == "standby"
    with_redis(redis_url, body)


# --- work queue ---------------------------------------------------------------------------------


def test_the_queue_takes_each_key_once_and_keeps_fingerprints_of_done_tasks(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        crawler = WorkQueue(client, "pages", "crawler-1")
        other = WorkQueue(client, "pages", "crawler-2")
        assert await crawler.push(items("a", "b", "a", "c")) == 3
        assert await other.push(items("b", "d")) == 1, "the fingerprint set is shared"
        assert await crawler.size() == 4
        taken = await crawler.take(3, timeout=0.1)
        assert [task.key for task in taken] == ["a", "b", "c"]
        assert taken[0].payload == {"url": "https://example.se/a", "n": 0}
        assert await crawler.size() == 1
        assert await crawler.in_flight() == 3
        await crawler.done(taken)
        assert await crawler.in_flight() == 0
        assert await crawler.push(items("a", "b")) == 0, "a done page keeps its fingerprint"
        rest = await other.take(10, timeout=0.1)
        assert [task.key for task in rest] == ["d"]
        assert await other.take(10, timeout=0.1) == []
    with_redis(redis_url, body)


def test_forget_lets_the_same_key_be_queued_again(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        scheduler = WorkQueue(client, "polls", "scheduler")
        crawler = WorkQueue(client, "polls", "crawler")
        assert await scheduler.push(items("poll:svt")) == 1
        assert await scheduler.push(items("poll:svt")) == 0, "still queued: not twice"
        [task] = await crawler.take(5, timeout=0.1)
        assert await scheduler.push(items("poll:svt")) == 0, "still being polled: not twice"
        await crawler.done([task], forget=True)
        assert await scheduler.push(items("poll:svt")) == 1
        assert await crawler.size() == 1
    with_redis(redis_url, body)


def test_take_waits_for_a_task_pushed_meanwhile(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        waiting = Redis.from_url(redis_url)  # BLMOVE holds its connection while it waits
        try:
            crawler = WorkQueue(waiting, "pages", "crawler")
            scheduler = WorkQueue(client, "pages", "scheduler")
            started = time.monotonic()
            assert await crawler.take(5, timeout=0.3) == []
            assert time.monotonic() - started >= 0.25
            taking = asyncio.create_task(crawler.take(5, timeout=5))
            await asyncio.sleep(0.2)
            await scheduler.push(items("late"))
            assert [task.key for task in await taking] == ["late"]
        finally:
            await waiting.aclose()
    with_redis(redis_url, body)


def test_a_consumer_waiting_longer_than_its_ttl_stays_registered_for_recovery(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        waiting = Redis.from_url(redis_url)
        try:
            crawler = WorkQueue(waiting, "pages", "patient", ttl=0.4)
            other = WorkQueue(client, "pages", "other")
            taking = asyncio.create_task(crawler.take(5, timeout=3))
            for _ in range(15):  # a recoverer keeps looking while the crawler waits 1.5 s
                assert await other.recover() == 0
                await asyncio.sleep(0.1)
            await other.push(items("late"))
            assert [task.key for task in await taking] == ["late"]
        finally:
            await waiting.aclose()
        await asyncio.sleep(0.6)  # then the crawler dies holding the task
        assert await other.recover() == 1
        assert [task.key for task in await other.take(5, timeout=0.1)] == ["late"]
    with_redis(redis_url, body)


def test_tasks_of_a_consumer_that_stopped_beating_go_back_to_the_queue_once(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        stalled = WorkQueue(client, "pages", "stalled", ttl=0.5)
        healthy = WorkQueue(client, "pages", "healthy", ttl=30)
        await healthy.push(items(*"abcdef"))
        held = await stalled.take(4, timeout=0.1)
        assert [task.key for task in held] == ["a", "b", "c", "d"]
        assert await healthy.recover() == 0, "a consumer within its ttl keeps its tasks"
        await asyncio.sleep(0.7)
        assert await healthy.recover() == 4
        assert await healthy.recover() == 0
        assert await healthy.size() == 6 and await healthy.in_flight() == 0
        again = await healthy.take(10, timeout=0.1)
        assert [task.key for task in again] == list("abcdef"), "recovered tasks go first, in order"
        await stalled.done(held)  # the stalled one finishing late takes nothing from the other
        assert await healthy.in_flight() == 6
        assert await client.sismember(stalled.consumers_key, "stalled") == 0
    with_redis(redis_url, body)


def test_two_recoverers_at_once_move_each_task_exactly_once(redis_url: str) -> None:
    keys = [f"page-{i}" for i in range(300)]

    async def body(client: Redis) -> None:
        dead = WorkQueue(client, "pages", "dead", ttl=0.3)
        await dead.push(items(*keys))
        assert len(await dead.take(300, timeout=0.1)) == 300
        await asyncio.sleep(0.5)
        clients = [Redis.from_url(redis_url) for _ in range(2)]
        try:
            recoverers = [WorkQueue(c, "pages", f"recoverer-{i}") for i, c in enumerate(clients)]
            moved = await asyncio.gather(*(r.recover() for r in recoverers))
        finally:
            for c in clients:
                await c.aclose()
        assert sum(moved) == 300
        taken = await WorkQueue(client, "pages", "next").take(1000, timeout=0.1)
        assert sorted(task.key for task in taken) == sorted(keys)
    with_redis(redis_url, body)


CRAWLER_THAT_TAKES = """
import asyncio, sys
from redis.asyncio import Redis
from monitor.cluster.workqueue import WorkQueue

async def main():
    client = Redis.from_url(sys.argv[1])
    taken = await WorkQueue(client, "pages", "doomed", ttl=1.0).take(int(sys.argv[2]), timeout=1)
    print(" ".join(task.key for task in taken), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_tasks_of_a_sigkilled_crawler_are_taken_by_another_exactly_once(redis_url: str) -> None:
    keys = [f"page-{i}" for i in range(10)]
    with_redis(redis_url, lambda client: WorkQueue(client, "pages", "scheduler").push(items(*keys)))
    doomed = subprocess.Popen(
        [sys.executable, "-c", CRAWLER_THAT_TAKES, redis_url, "7"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert doomed.stdout is not None
        held = doomed.stdout.readline().split()
        assert held == keys[:7], "the crawler took its tasks"
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)

    async def body(client: Redis) -> None:
        survivor = WorkQueue(client, "pages", "survivor", ttl=30)
        assert await survivor.in_flight() == 7, "a killed crawler's tasks are held, not lost"
        deadline = time.monotonic() + 5
        recovered = 0
        while recovered == 0:
            assert time.monotonic() < deadline, "the dead crawler's tasks never came back"
            await asyncio.sleep(0.1)
            recovered = await survivor.recover()
        assert recovered == 7
        taken = await survivor.take(100, timeout=0.1)
        assert sorted(task.key for task in taken) == sorted(keys)
        assert await survivor.take(100, timeout=0.1) == []
        await survivor.done(taken)
        assert await survivor.in_flight() == 0 and await survivor.size() == 0
    with_redis(redis_url, body)


# --- streams ------------------------------------------------------------------------------------


def test_a_group_reads_each_entry_once_and_ack_clears_pending(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        first = StreamGroup(client, "monitor:articles", "matchers", "matcher-1")
        second = StreamGroup(client, "monitor:articles", "matchers", "matcher-2")
        await first.ensure()
        await second.ensure()  # BUSYGROUP is not an error
        ids = [await add(client, "monitor:articles", {"article": str(n), "titel": "Åland"}) for n in range(5)]
        assert await first.lag() == 5
        got_first = await first.read(3, block=0.1)
        got_second = await second.read(10, block=0.1)
        assert [i for i, _ in got_first + got_second] == ids
        assert got_first[0][1] == {"article": "0", "titel": "Åland"}
        assert await first.pending() == 5 and await first.lag() == 0
        await first.ack([i for i, _ in got_first])
        assert await first.pending() == 2
        await second.ack([i for i, _ in got_second])
        assert await first.pending() == 0
        assert await first.read(10, block=0.1) == []
    with_redis(redis_url, body)


def test_entries_of_a_dead_consumer_are_claimed_after_claim_idle_and_not_before(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        dead = StreamGroup(client, "monitor:articles", "matchers", "dead", claim_idle=0.5)
        alive = StreamGroup(client, "monitor:articles", "matchers", "alive", claim_idle=0.5)
        await dead.ensure()
        ids = [await add(client, "monitor:articles", {"article": str(n)}) for n in range(3)]
        assert [i for i, _ in await dead.read(10, block=0.1)] == ids  # and then it dies, no ack
        assert await alive.read(10, block=0.1) == [], "claimed while the reader may still be working"
        await asyncio.sleep(0.7)
        claimed = await alive.read(10, block=0.1)
        assert [i for i, _ in claimed] == ids
        assert claimed[2][1] == {"article": "2"}
        assert await alive.read(10, block=0.1) == [], "claimed once, not again at the next read"
        await alive.ack(ids)
        assert await alive.pending() == 0
    with_redis(redis_url, body)


def test_a_restarted_consumer_reads_its_own_pending_entries_first(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        before = StreamGroup(client, "monitor:articles", "matchers", "matcher-1")
        await before.ensure()
        ids = [await add(client, "monitor:articles", {"article": str(n)}) for n in range(3)]
        assert len(await before.read(10, block=0.1)) == 3  # then the process restarts
        newer = await add(client, "monitor:articles", {"article": "3"})
        after = StreamGroup(client, "monitor:articles", "matchers", "matcher-1")
        assert [i for i, _ in await after.read(2, block=0.1)] == ids[:2]
        assert [i for i, _ in await after.read(2, block=0.1)] == [*ids[2:], newer]
        assert await after.read(2, block=0.1) == []
        assert await after.pending() == 4
    with_redis(redis_url, body)


def test_trim_drops_only_what_every_group_is_done_with(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        matchers = StreamGroup(client, "monitor:articles", "matchers", "m")
        archivers = StreamGroup(client, "monitor:articles", "archivers", "a")
        await matchers.ensure()
        await archivers.ensure()
        ids = [await add(client, "monitor:articles", {"article": str(n)}) for n in range(5)]
        await matchers.ack([i for i, _ in await matchers.read(10, block=0.1)])
        first_two = await archivers.read(2, block=0.1)
        await archivers.ack([first_two[0][0]])  # the second is pending: still needed
        assert await matchers.trim() == 1
        assert [i for i, _ in await client.xrange("monitor:articles")] == [i.encode() for i in ids[1:]]
        await archivers.ack([first_two[1][0]])
        assert await archivers.trim() == 1, "entries the archivers have not been given stay"
        assert [i for i, _ in await archivers.read(10, block=0.1)] == ids[2:]
    with_redis(redis_url, body)


# --- members and shards -------------------------------------------------------------------------


def test_members_are_alive_while_they_beat(redis_url: str) -> None:
    async def body(client: Redis) -> None:
        one = Members(client, "matcher", "one", ttl=0.6)
        two = Members(client, "matcher", "two", ttl=0.6)
        other_role = Members(client, "crawler", "three", ttl=0.6)
        await one.beat()
        await two.beat()
        await other_role.beat()
        assert await one.alive() == ["one", "two"]
        await asyncio.sleep(0.4)
        await two.beat()
        await asyncio.sleep(0.4)
        assert await one.alive() == ["two"], "one stopped beating 0.8 s ago"
        await two.beat()
        assert await client.zrange(two.key, 0, -1) == [b"two"], "a beat removes the expired"
        await two.leave()
        assert await two.alive() == []
    with_redis(redis_url, body)


def test_a_third_matcher_takes_about_a_third_of_the_shards_and_only_those_move() -> None:
    shards = [str(n) for n in range(64)]
    before = {shard: owner(shard, ["matcher-a", "matcher-b"]) for shard in shards}
    after = {shard: owner(shard, ["matcher-a", "matcher-b", "matcher-c"]) for shard in shards}
    moved = [shard for shard in shards if before[shard] != after[shard]]
    assert {after[shard] for shard in moved} == {"matcher-c"}
    assert moved == owned("matcher-c", shards, ["matcher-c", "matcher-b", "matcher-a"])
    assert 64 / 3 - 10 <= len(moved) <= 64 / 3 + 10
    assert {before[shard] for shard in moved} == {"matcher-a", "matcher-b"}
    assert {shard: owner(shard, ["matcher-b", "matcher-a"]) for shard in shards} == before, \
        "the owner depends on the members, not their order"
    assert owner("7", []) is None


def test_shard_of_is_stable_across_processes() -> None:
    expected = {"kazakstan-csto": 26, "svt": 43, "Åland": 5, "": 52}
    assert {name: shard_of(name, 64) for name in expected} == expected
    assert shard_of("svt", 1) == 0
    with pytest.raises(ValueError):
        shard_of("svt", 0)
