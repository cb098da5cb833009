"""`monitor web`: the pages (and /healthz, /metrics, the Atom feeds) served alone over an
existing database, without the daemon: nothing is crawled, matched or sent, and the database
is only read (the listener's handlers open read-only connections)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from monitor.http import start_http
from monitor.metrics import Metrics
from monitor.models import Config

# No scheduler runs here: /healthz reports only whether the database takes writes (so a
# read-only copy of a database shows as unhealthy), and /sources shows no next poll.
NO_SCHEDULER = {"running": True, "reason": "", "sources": {}}


def no_scheduler() -> dict:
    return NO_SCHEDULER


async def serve_until_stopped(config: Config, on_ready: Callable[[str, int], None]) -> None:
    """Serve config.http until SIGTERM or SIGINT; `on_ready(host, port)` once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    handle = await start_http(config, no_scheduler, Metrics(config))
    try:
        on_ready(handle.host, handle.port)
        await stop.wait()
    finally:
        await handle.close()
