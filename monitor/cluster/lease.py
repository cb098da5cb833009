"""A lease in Redis: one holder at a time, kept by renewing before the ttl runs out. When the
holder dies it stops renewing, the key expires, and a standby's acquire() succeeds."""

from __future__ import annotations

from redis.asyncio import Redis

# Extend the ttl only while the value is still ours: after an expiry another owner may hold it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Delete only our own lease, never the next holder's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class Lease:
    """`key` held by `owner` for `ttl` seconds at a time."""

    def __init__(self, redis: Redis, key: str, owner: str, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError(f"a lease's ttl must be positive, not {ttl}")
        if not owner:
            raise ValueError("a lease needs a non-empty owner")
        self.redis = redis
        self.key = key
        self.owner = owner
        self.ttl = ttl
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it (an owner already holding it renews instead)."""
        if await self.redis.set(self.key, self.owner, nx=True, px=_milliseconds(self.ttl)):
            return True
        return await self.renew()

    async def renew(self) -> bool:
        """Extend the lease by ttl; False when we no longer hold it (expired, or someone else's)."""
        return bool(await self._renew(keys=[self.key], args=[self.owner, _milliseconds(self.ttl)]))

    async def release(self) -> None:
        """Give the lease up at once, so a standby need not wait for the ttl."""
        await self._release(keys=[self.key], args=[self.owner])

    async def holder(self) -> str | None:
        value = await self.redis.get(self.key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)
