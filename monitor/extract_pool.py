"""Article extraction on every core: monitor.extract.extract_article in worker processes, so
the crawler's event loop only fetches and stores.

The workers are spawned, not forked: the parent runs Twisted, asyncio and threads, whose state
a fork would copy half-held. One pool serves a crawler for its whole life (created at its
first page, shut down in close()).

Hostile pages fail alone:

* a page whose extraction runs past `timeout` fails with "extraction failed: no result after
  N s"; the workers are killed (a process pool cannot stop one task) and the pool rebuilt, and
  the pages that were in the killed workers beside it are extracted again on the new one;
* a worker that dies by itself (a crash in C code, the kernel's OOM killer) breaks every page
  in flight, and nothing tells which one killed it: each of them is extracted again on its
  own, with no other page in flight, and one that kills a worker there too fails with
  "extraction failed: worker died".

At most one page per worker is handed over at a time, so a page's time is counted from when a
worker could take it, not from when it joined a queue behind others. The workers start in the
background when the crawler first polls; the pages that come before they are up (seconds, more
on a busy machine) are extracted in the crawler's process, as without a pool.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from monitor.extract import ExtractedArticle, extract_article

logger = logging.getLogger(__name__)
# Plain extraction takes milliseconds to a second per page; a page still going after this long
# is pathological (or the machine is swapping) and would hold a worker forever.
EXTRACT_TIMEOUT = 30.0
# Spawning a worker imports trafilatura and loads the language model: seconds, not minutes.
START_TIMEOUT = 120.0
WORKER_DIED = "extraction failed: worker died"
NOT_STARTED = "extraction failed: the worker processes did not start"
_WARM_UP_PAGE = (f"<html><body><article><h1>Warm-up</h1><p>{'Text to warm up with. ' * 40}</p>"
                 "</article></body></html>")


class ExtractionFailed(Exception):
    """A page's extraction killed its worker or ran past the time limit; the message says
    which, in the form stored as the page's error."""


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class _Workers:
    executor: ProcessPoolExecutor
    killed: bool = False  # by us, for another page's timeout: the pages it broke are innocent


class _Suspect:
    """The outcome of a page that was in flight when a worker died by itself."""


_SUSPECT = _Suspect()


class ExtractionPool:
    """`await pool.extract(html, url)` is extract_article(html, url), run in a worker process
    once the workers are up. With `workers=0` it runs in this process (no time limit)."""

    def __init__(self, workers: int | None = None, timeout: float = EXTRACT_TIMEOUT) -> None:
        self.workers = default_workers() if workers is None else workers
        if self.workers < 0:
            raise ValueError(f"workers must be 0 or more, got {workers}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.timeout = timeout
        self._current: _Workers | None = None
        self._slots = asyncio.Semaphore(max(self.workers, 1))
        self._alone = asyncio.Lock()
        self._starting = asyncio.Lock()
        self.closed = False
        self._start: asyncio.Future | None = None
        self._started_once = False  # the first pool is up: pages go to workers from then on
        self.restarts = 0  # pools rebuilt after a timeout or a dead worker

    def start(self) -> None:
        """Start the workers in the background, before the first page needs them (a crawler
        calls this when it polls sources, whose new articles are fetched next)."""
        if self.workers and self._current is None and self._start is None and not self.closed:
            self._start = asyncio.ensure_future(self._started())
            self._start.add_done_callback(_consume)

    async def ready(self) -> None:
        """Wait until the workers are up (raises ExtractionFailed if they cannot start)."""
        if self.workers:
            await self._started()

    async def extract(self, html: str, url: str) -> ExtractedArticle | None:
        """The page's article, or None when it has none. Raises ExtractionFailed for a page that
        killed its worker or ran too long, and extract_article's own exceptions as they are."""
        if self.closed:  # a page that came in after its crawl was stopped
            raise ExtractionFailed("extraction failed: the crawler is closing")
        if not self.workers or not self._started_once:
            # The workers take seconds to start, more on a busy machine: until then pages are
            # extracted here, as without a pool, rather than wait (and a stop in the first
            # seconds keeps what was fetched).
            self.start()
            return extract_article(html, url)
        async with self._slots:
            outcome = await self._run(html, url)
        if isinstance(outcome, _Suspect):
            return await self._run_alone(html, url)
        return outcome

    async def _run(self, html: str, url: str) -> ExtractedArticle | _Suspect | None:
        while True:
            workers = await self._started()
            try:
                future = workers.executor.submit(extract_article, html, url)
            except BrokenProcessPool:  # it broke before this page reached it
                self._replace(workers)
                continue
            try:
                return await self._result(future)
            except TimeoutError:
                self._kill(workers)
                raise ExtractionFailed(f"extraction failed: no result after {self.timeout:g} s") from None
            except BrokenProcessPool:
                self._replace(workers)
                if not workers.killed:
                    return _SUSPECT
                # else killed for another page's timeout: this page goes again, on the new pool

    async def _result(self, future: Future) -> ExtractedArticle | None:
        return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)

    async def _run_alone(self, html: str, url: str) -> ExtractedArticle | None:
        """Extract with no other page in flight, so a dead worker can only be this page's."""
        async with self._alone:
            for _ in range(self.workers):
                await self._slots.acquire()
            try:
                outcome = await self._run(html, url)
            finally:
                for _ in range(self.workers):
                    self._slots.release()
        if isinstance(outcome, _Suspect):
            raise ExtractionFailed(WORKER_DIED)
        return outcome

    async def _started(self) -> _Workers:
        """The pool, every worker of it ready: starting one (a second or two per worker, more on
        a busy machine) is not counted in any page's time."""
        async with self._starting:
            if self.closed:
                raise ExtractionFailed("extraction failed: the crawler is closing")
            if self._current is None:
                executor = ProcessPoolExecutor(self.workers, initializer=_start_worker,
                                               mp_context=multiprocessing.get_context("spawn"))
                try:
                    await asyncio.wait_for(_all_answer(executor, self.workers), START_TIMEOUT)
                except BaseException as exc:  # also cancelled: no workers left behind
                    _kill_processes(executor)
                    executor.shutdown(wait=False)
                    if isinstance(exc, BrokenProcessPool | TimeoutError):
                        raise ExtractionFailed(NOT_STARTED) from None
                    raise
                self._current = _Workers(executor)
                self._started_once = True
            return self._current

    def _replace(self, workers: _Workers) -> None:
        """Drop a broken pool; the next page starts a new one."""
        if self._current is workers:
            self._current = None
            self.restarts += 1
        # Not cancel_futures: a page queued on it must hear BrokenProcessPool and go again,
        # not be cancelled.
        workers.executor.shutdown(wait=False)

    def _kill(self, workers: _Workers) -> None:
        workers.killed = True
        _kill_processes(workers.executor)
        self._replace(workers)

    def close(self) -> None:
        """Stop the workers, also one busy with a page (its crawl is over); pages that come
        after this fail at once rather than start new workers."""
        self.closed = True
        if self._start is not None:
            self._start.cancel()  # a start still under way kills its workers (see _started)
        if self._current is not None:
            workers, self._current = self._current, None
            _kill_processes(workers.executor)
            workers.executor.shutdown(wait=True, cancel_futures=True)


async def _all_answer(executor: ProcessPoolExecutor, workers: int) -> None:
    """Until each worker has answered once (the first ready ones may answer several times)."""
    answered: set[int] = set()
    while len(answered) < workers:
        answered.update(await asyncio.gather(
            *(asyncio.wrap_future(executor.submit(_pid_after, 0.05)) for _ in range(workers))))


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)  # long enough for the other ready workers to take the other calls
    return os.getpid()


def _consume(start: asyncio.Future) -> None:
    if not start.cancelled() and start.exception() is not None:
        logger.warning("the extraction workers did not start (%s); pages are extracted in the "
                       "crawler's process", start.exception())


def _kill_processes(executor: ProcessPoolExecutor) -> None:
    # A process pool cannot cancel a running task; its processes are only reachable here
    # (Python 3.14 adds ProcessPoolExecutor.kill_workers() for this).
    for process in list((executor._processes or {}).values()):
        process.kill()


def _start_worker() -> None:
    """In each worker, before its first page."""
    # Ctrl-C reaches the whole process group; the parent decides what stops, and closes the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), daemon=True,
                         name="exit-with-parent").start()
    # trafilatura and the language model load lazily, a second or so: not in a page's time.
    extract_article(_WARM_UP_PAGE, "http://localhost/")


def _exit_with_parent(sentinel: int) -> None:
    """A worker busy with a page would outlive a parent killed by SIGKILL (its task queue is
    never closed while it works); the sentinel becomes readable when the parent is gone."""
    multiprocessing.connection.wait([sentinel])
    os._exit(1)
