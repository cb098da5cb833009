"""Scrapy's robots.txt middleware, with every request that waits for a host's robots.txt given
the parsed rules.

Scrapy 2.13+ awaits the one shared Deferred from each waiting request; the first waiter's
future callback returns None, so the third and later requests to a host that arrive while its
robots.txt is being fetched see no rules at all and are let through, disallowed or not (a feed
and two article pages are enough). Each waiter here gets its own Deferred, fed from the shared
one without consuming its result (Scrapy's behaviour before the async rewrite)."""

from __future__ import annotations

import time
from typing import Any

from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.http import Request
from scrapy.robotstxt import RobotParser
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred


class RobotsTxt(RobotsTxtMiddleware):
    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        self.max_age = crawler.settings.getfloat("MONITOR_ROBOTS_MAX_AGE", 0)
        self.fetched: dict[str, float] = {}  # netloc → when its robots.txt was requested

    async def robot_parser(self, request: Request) -> RobotParser | None:
        netloc = urlparse_cached(request).netloc
        self._expire(netloc)
        pending = self._parsers.get(netloc)
        if not isinstance(pending, Deferred):
            return await super().robot_parser(request)
        waiter: Deferred[RobotParser | None] = Deferred()

        def relay(parser: RobotParser | None) -> RobotParser | None:
            waiter.callback(parser)
            return parser  # for the next waiter

        pending.addCallback(relay)
        return await maybe_deferred_to_future(waiter)

    def _expire(self, netloc: str) -> None:
        now = time.monotonic()
        if netloc not in self._parsers:
            self.fetched[netloc] = now  # the parent class requests it now
        elif (self.max_age and not isinstance(self._parsers[netloc], Deferred)
              and now - self.fetched.get(netloc, now) > self.max_age):
            del self._parsers[netloc]
            self.fetched[netloc] = now
