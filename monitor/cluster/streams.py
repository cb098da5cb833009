"""New articles to the matchers through a Redis Stream and its consumer groups.

Every group sees every entry once; within a group each entry goes to one consumer and stays
pending until that consumer acknowledges it. A consumer that dies leaves its entries pending: a
restarted consumer of the same name reads its own first, and after `claim_idle` seconds any other
consumer of the group claims them. Delivery is therefore at least once: ack after the work is
stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

Entry = tuple[str, dict[str, str]]

_CLAIM_CALLS = 8  # XAUTOCLAIM calls per read(): each scans about ten times `count` pending ids


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(raw_id: Any, fields: dict | None) -> Entry:
    return _text(raw_id), {_text(k): _text(v) for k, v in (fields or {}).items()}


def _read_entries(response: Any) -> list[Entry]:
    """XREADGROUP's reply for one stream, whichever shape the client's protocol gives."""
    if not response:
        return []
    per_stream = list(response.values()) if isinstance(response, dict) else [e for _, e in response]
    entries: list[Entry] = []
    for stream_entries in per_stream:
        if stream_entries and isinstance(stream_entries[0], list):
            stream_entries = stream_entries[0]
        entries += [_entry(raw_id, fields) for raw_id, fields in stream_entries if raw_id is not None]
    return entries


async def add(redis: Redis, stream: str, fields: dict[str, str]) -> str:
    """Append an entry; its id. No MAXLEN: trimming by length could drop entries a group has not
    read yet (StreamGroup.trim() trims only what every group is done with)."""
    return _text(await redis.xadd(stream, fields))


def _next_id(entry_id: str) -> str:
    milliseconds, sequence = entry_id.split("-")
    return f"{milliseconds}-{int(sequence) + 1}"


def _oldest_needed(group: dict[str, Any], first_pending: str | None) -> str:
    """The lowest id a group may still read: its oldest pending entry, or the one after the last
    it was given."""
    if first_pending is not None:
        return first_pending
    return _next_id(_text(group["last-delivered-id"]))


def _id_key(entry_id: str) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split("-")
    return int(milliseconds), int(sequence)


class StreamGroup:
    """`consumer` in consumer group `group` of `stream`."""

    def __init__(self, redis: Redis, stream: str, group: str, consumer: str,
                 claim_idle: float = 30.0) -> None:
        if claim_idle <= 0:
            raise ValueError(f"claim_idle must be positive, not {claim_idle}")
        if not stream or not group or not consumer:
            raise ValueError("a stream group needs a non-empty stream, group and consumer")
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.claim_idle = claim_idle
        self._claim_cursor = "0-0"
        self._own_cursor: str | None = "0"  # None once this consumer's old pending entries are read

    async def ensure(self) -> None:
        """Create the group (and the stream) so that it starts from the first entry."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def read(self, count: int, block: float = 1.0) -> list[Entry]:
        """Up to `count` entries for this consumer: first what it held before a restart (its own
        pending entries, until they are all read once), then entries other consumers have left
        pending longer than claim_idle, then new ones, waiting up to `block` seconds for them
        when nothing else was found (0: do not wait)."""
        if count < 1:
            raise ValueError(f"read() needs a count of at least 1, not {count}")
        entries: list[Entry] = []
        if self._own_cursor is not None:
            # Before claiming anything: claimed entries join our own pending list, and must not
            # come back a second time through this pass.
            entries = await self._read_own(count)
            if len(entries) == count:
                return entries
        entries += await self._claim(count - len(entries))
        if len(entries) < count:
            entries += await self._read_new(count - len(entries), block if not entries else 0)
        return entries

    async def _read_own(self, count: int) -> list[Entry]:
        response = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: self._own_cursor},
                                               count=count)
        entries = _read_entries(response)
        # A short page is the last: the pass is over, and what is pending from now on was given
        # to this consumer by this process.
        self._own_cursor = entries[-1][0] if len(entries) == count else None
        return entries

    async def _claim(self, count: int) -> list[Entry]:
        claimed: list[Entry] = []
        for _ in range(_CLAIM_CALLS):
            reply = await self.redis.xautoclaim(
                self.stream, self.group, self.consumer, round(self.claim_idle * 1000),
                start_id=self._claim_cursor, count=count - len(claimed),
            )
            self._claim_cursor = _text(reply[0])
            claimed += [_entry(raw_id, fields) for raw_id, fields, *_ in reply[1] if raw_id is not None]
            if len(claimed) >= count or self._claim_cursor == "0-0":
                break
        return claimed

    async def _read_new(self, count: int, block: float) -> list[Entry]:
        wait = round(block * 1000) if block > 0 else None
        response = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"},
                                               count=count, block=wait)
        return _read_entries(response)

    async def ack(self, ids: Iterable[str]) -> None:
        """The entries' work is stored: they leave the group's pending list."""
        ids = list(ids)
        if ids:
            await self.redis.xack(self.stream, self.group, *ids)

    async def pending(self) -> int:
        """Entries delivered to some consumer of the group and not acknowledged."""
        summary = await self.redis.xpending(self.stream, self.group)
        return int(summary["pending"])

    async def lag(self) -> int | None:
        """Entries the group has not been given yet; None when Redis cannot tell (after some
        deletions)."""
        group = await self._group_info(self.group)
        value = group.get("lag")
        return None if value is None else int(value)

    async def _groups(self) -> list[dict[str, Any]]:
        return [{_text(k): v for k, v in group.items()}
                for group in await self.redis.xinfo_groups(self.stream)]

    async def _group_info(self, name: str) -> dict[str, Any]:
        for group in await self._groups():
            if _text(group["name"]) == name:
                return group
        raise LookupError(f"no consumer group {name!r} on stream {self.stream!r}; call ensure() first")

    async def trim(self) -> int:
        """Drop the entries every group of the stream is done with (read and acknowledged);
        how many were dropped."""
        needed: list[str] = []
        for group in await self._groups():
            summary = await self.redis.xpending(self.stream, _text(group["name"]))
            first = _text(summary["min"]) if summary["pending"] else None
            needed.append(_oldest_needed(group, first))
        if not needed:
            return 0
        return int(await self.redis.xtrim(self.stream, minid=min(needed, key=_id_key), approximate=False))
