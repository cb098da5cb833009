"""The queue between the daemon and its one long-lived crawler.

The daemon pushes jobs (a source to poll, an article page to fetch); the crawler's spider pops
them when it is told there is work or when it goes idle. Everything that crosses is a small
frozen dataclass, so a shared frontier (Redis, the scrapy-redis shape) can replace the
in-process one behind the same two methods."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from spiders.article import PageTarget
from spiders.base import SourceTarget

KINDS = ("feed", "sitemap", "page", "article")


@dataclass(frozen=True)
class Job:
    batch: int  # the caller waiting for this job's results
    kind: str  # one of KINDS: which parser reads the answer
    target: SourceTarget | PageTarget


class Frontier(Protocol):
    def push(self, jobs: Iterable[Job]) -> None: ...

    def pop(self, limit: int) -> list[Job]: ...

    def listen(self, wake: Callable[[], None]) -> None:
        """`wake` is called after each push (a remote frontier would rely on the spider's
        periodic pull instead)."""


class LocalFrontier:
    """The in-process frontier: a FIFO of jobs in this process's memory."""

    def __init__(self) -> None:
        self._jobs: deque[Job] = deque()
        self._wake: Callable[[], None] | None = None

    def push(self, jobs: Iterable[Job]) -> None:
        self._jobs.extend(jobs)
        if self._wake is not None:
            self._wake()

    def pop(self, limit: int) -> list[Job]:
        return [self._jobs.popleft() for _ in range(min(limit, len(self._jobs)))]

    def listen(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def __len__(self) -> int:
        return len(self._jobs)
