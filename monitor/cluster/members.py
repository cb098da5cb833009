"""Who is alive in a role, and which member owns which shard.

Members beat into a sorted set scored by the Redis server's clock (one clock for all machines);
a member whose last beat is older than ttl is dead. Shards go to members by rendezvous (highest
random weight) hashing over blake2b, so every process computes the same owner from the same
member list, and a member joining or leaving moves only the shards it wins or loses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import blake2b

from redis.asyncio import Redis

# Scores are the server's milliseconds; expired members are dropped on every beat.
_BEAT = """
local now = redis.call('TIME')
local milliseconds = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], milliseconds, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (milliseconds - tonumber(ARGV[2])))
return milliseconds
"""

_ALIVE = """
local now = redis.call('TIME')
local milliseconds = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], milliseconds - tonumber(ARGV[1]), '+inf')
"""


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _hash(text: str) -> int:
    return int.from_bytes(blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def shard_of(name: str, shards: int) -> int:
    """The shard (0 … shards-1) of a name, the same in every process and Python version."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    return _hash(name) % shards


def owner(shard: str, members: Sequence[str]) -> str | None:
    """The member that owns `shard`: the one whose (member, shard) hash is highest."""
    if not members:
        return None
    return max(members, key=lambda member: (_hash(f"{member}\x00{shard}"), member))


def owned(member: str, shards: Iterable[str], members: Sequence[str]) -> list[str]:
    """The shards, of those given, that `member` owns among `members`."""
    return [shard for shard in shards if owner(shard, members) == member]


class Members:
    """`member` of `role`, alive for `ttl` seconds after each beat."""

    def __init__(self, redis: Redis, role: str, member: str, ttl: float = 10.0,
                 prefix: str = "monitor:") -> None:
        if ttl <= 0:
            raise ValueError(f"a member's ttl must be positive, not {ttl}")
        if not role or not member:
            raise ValueError("a member needs a non-empty role and name")
        self.redis = redis
        self.role = role
        self.member = member
        self.ttl = ttl
        self.key = f"{prefix}members:{role}"
        self._beat = redis.register_script(_BEAT)
        self._alive = redis.register_script(_ALIVE)

    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    async def beat(self) -> None:
        """This member is alive now; members silent for longer than ttl are removed."""
        await self._beat(keys=[self.key], args=[self.member, self._ttl_ms()])

    async def alive(self) -> list[str]:
        """The members that beat within the last ttl seconds, sorted."""
        return sorted(_text(m) for m in await self._alive(keys=[self.key], args=[self._ttl_ms()]))

    async def leave(self) -> None:
        """Stop counting as alive at once, so the others take over this member's shards."""
        await self.redis.zrem(self.key, self.member)
