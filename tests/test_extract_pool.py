"""Issue 16, item 1: article pages are extracted in worker processes, one per core. A page that
runs too long or kills its worker fails alone, the pool is rebuilt, and the workers die with
the monitor. Scrapy learns about each spider callback once, not once per response."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO
from servers import FIXTURE_SITE, Site

from monitor.extract import extract_article
from monitor.extract_pool import WORKER_DIED, ExtractionFailed, ExtractionPool

ARTICLES = sorted(p.relative_to(FIXTURE_SITE).as_posix() for p in FIXTURE_SITE.rglob("*.html")
                  if p.name != "index.html")
WORDS = "regeringen riksdagen kommunen polisen domstolen forskare studien marknaden".split()


def heavy_page(blocks: int) -> str:
    """A page within the download limit that takes trafilatura seconds per thousand blocks."""
    body = "".join(
        f"<div class='c{i}'><p>{' '.join(WORDS[(i + j) % 8] for j in range(40))}.</p>"
        f"<a href='/x{i}'>länk {i}</a></div>" for i in range(blocks))
    return f"<html lang='sv'><body><h1>Tung sida</h1><article>{body}</article></body></html>"


def decoded(page: Path) -> str:
    """As Scrapy decodes the fixture pages: two declare latin-1 (read as cp1252, as browsers do)
    and windows-1252, the rest are UTF-8."""
    body = page.read_bytes()
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252")


def fixture_pages() -> list[tuple[str, str]]:
    return [(decoded(FIXTURE_SITE / path), f"http://127.0.0.1/{path}") for path in ARTICLES]


async def extract_all(pool: ExtractionPool, pages: list[tuple[str, str]]) -> list[object]:
    return await asyncio.gather(*(pool.extract(html, url) for html, url in pages),
                                return_exceptions=True)


def worker_pids() -> set[int]:
    return {p.pid for p in multiprocessing.active_children()}


def test_pages_come_back_from_the_workers_as_extracted_here() -> None:
    pages = fixture_pages()
    pool = ExtractionPool(workers=2)

    async def run() -> tuple[list[object], set[int]]:
        await pool.ready()  # before it is, pages are extracted in this process
        results = await extract_all(pool, pages)
        return results, worker_pids()

    try:
        results, workers = asyncio.run(run())
    finally:
        pool.close()
    assert results == [extract_article(html, url) for html, url in pages]
    assert len(workers) == 2 and os.getpid() not in workers
    assert pool.restarts == 0
    assert not worker_pids(), "close() stops the workers"


def test_a_page_that_runs_past_the_limit_fails_alone_and_the_others_are_extracted() -> None:
    pages = fixture_pages()
    heavy = (heavy_page(20_000), "http://127.0.0.1/tung.html")  # 8.5 MB: tens of seconds
    pool = ExtractionPool(workers=2, timeout=3)

    async def run() -> tuple[list[object], object]:
        await pool.ready()
        # The heavy page goes in among the others, so some are in the workers it holds up.
        results = await extract_all(pool, [*pages[:3], heavy, *pages[3:]])
        after = await pool.extract(*pages[0])  # the rebuilt pool works
        return results, after

    try:
        results, after = asyncio.run(run())
    finally:
        pool.close()
    failed = results.pop(3)
    assert isinstance(failed, ExtractionFailed)
    assert str(failed) == "extraction failed: no result after 3 s"
    assert results == [extract_article(html, url) for html, url in pages]
    assert after == extract_article(*pages[0])
    assert pool.restarts == 1


class WorkerKiller:
    """Kills any worker of this process that has used more than `cpu_seconds` of CPU, as the
    kernel's OOM killer would kill a worker that a page made grow: the other pages take a
    small fraction of that (CPU time, so a busy machine does not change who is killed)."""

    def __init__(self, cpu_seconds: float) -> None:
        self.cpu_seconds = cpu_seconds
        self.killed: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        while not self.stop.wait(0.05):
            for pid in worker_pids():
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
                if cpu > self.cpu_seconds and pid not in self.killed:
                    self.killed.append(pid)
                    os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> WorkerKiller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU times from /proc")
def test_a_page_whose_worker_dies_fails_alone_and_the_pages_beside_it_are_extracted() -> None:
    pages = fixture_pages()
    killer_page = (heavy_page(8_000), "http://127.0.0.1/tung.html")  # over 5 s of CPU
    pool = ExtractionPool(workers=2, timeout=600)  # no timeout here: the worker dies first

    async def run() -> tuple[list[object], list[object]]:
        await pool.ready()
        results = await extract_all(pool, [*pages[:3], killer_page, *pages[3:]])
        return results, await extract_all(pool, pages[:2])

    with WorkerKiller(cpu_seconds=5) as killer:
        try:
            results, after = asyncio.run(run())
        finally:
            pool.close()
    failed = results.pop(3)
    assert isinstance(failed, ExtractionFailed) and str(failed) == WORKER_DIED
    assert results == [extract_article(html, url) for html, url in pages]
    # Killed in the shared pool, then again when it ran alone: so it was this page.
    assert len(killer.killed) == 2
    assert pool.restarts == 2
    assert after == [extract_article(html, url) for html, url in pages[:2]]


KILLED_PARENT = """
import asyncio, multiprocessing, sys
from monitor.extract_pool import ExtractionPool

async def main(page):
    pool = ExtractionPool(workers=2)
    await pool.ready()
    busy = asyncio.ensure_future(pool.extract(page, "http://127.0.0.1/tung.html"))
    await asyncio.sleep(1)  # handed to a worker, which is busy with it for tens of seconds
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    await busy

asyncio.run(main(sys.stdin.read()))
"""


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited; only its parent may reap it


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads process states from /proc")
def test_workers_exit_when_the_monitor_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", KILLED_PARENT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        parent.stdin.write(heavy_page(20_000))  # busy for tens of seconds when it is killed
        parent.stdin.close()
        workers = [int(pid) for pid in parent.stdout.readline().split()]
    finally:
        parent.kill()  # SIGKILL: no chance to close the pool
        parent.wait()
    assert len(workers) == 2
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)], "workers outlived the monitor"


def test_a_page_after_close_fails_at_once_without_new_workers() -> None:
    """Answers still on their way when the crawler closes must not start a pool at exit."""
    pool = ExtractionPool(workers=2)
    pool.close()
    with pytest.raises(ExtractionFailed, match="the crawler is closing"):
        asyncio.run(pool.extract(*fixture_pages()[0]))
    assert not worker_pids()


def test_pages_before_the_workers_are_up_are_extracted_here() -> None:
    pool = ExtractionPool(workers=2)

    async def run() -> tuple[object, int]:
        article = await pool.extract(*fixture_pages()[0])  # the workers are only starting
        await pool.ready()
        return article, len(worker_pids())

    try:
        article, workers = asyncio.run(run())
    finally:
        pool.close()
    assert article == extract_article(*fixture_pages()[0])
    assert workers == 2, "the first page started the workers"


def test_bad_pool_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="workers must be 0 or more"):
        ExtractionPool(workers=-1)
    with pytest.raises(ValueError, match="timeout must be positive"):
        ExtractionPool(workers=1, timeout=0)


CRAWL = """
import asyncio, json, multiprocessing, sys
import scrapy.utils.misc as misc
from monitor.crawl import Crawler
from monitor.models import CrawlSettings
from spiders.article import PageTarget
from spiders.base import SourceTarget

# What Scrapy had to inspect afresh (inspect.getsource + ast.parse for a generator callback):
# every call of its check whose callable is not in its cache yet.
misses = []
check = misc.is_generator_with_return_value
def counted(callable):
    if callable not in misc._generator_callbacks_cache:
        misses.append(getattr(callable, "__name__", repr(callable)))
    return check(callable)
misc.is_generator_with_return_value = counted

async def main(base, paths, feed):
    crawler = Crawler(CrawlSettings(user_agent="test", delay=0, allow_private=True))
    try:
        targets = [PageTarget(n, f"{base}/{path}") for n, path in enumerate(paths)]
        pages = await crawler.fetch_pages(targets)
        workers = [p.pid for p in multiprocessing.active_children()]
        polls = await crawler.fetch_sources(
            {"feed": [SourceTarget(f"feed-{n}", f"{base}/{feed}") for n in range(40)]})
    finally:
        await crawler.close()
    print(json.dumps({"pages": {p.article_id: [p.url, p.text, p.lang, p.error] for p in pages},
                      "polls": sum(1 for p in polls if p.status == 200), "workers": workers,
                      "after_close": len(multiprocessing.active_children()), "misses": misses}))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]))
"""


def test_a_crawl_extracts_in_workers_and_binds_each_callback_once(site: Site) -> None:
    paths = ARTICLES * 8  # about a hundred responses
    result = subprocess.run([sys.executable, "-c", CRAWL, site.base, json.dumps(paths),
                             "rss/utrikes.xml"], capture_output=True, text=True, timeout=300,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])

    assert len(out["pages"]) == len(paths)
    for n, path in enumerate(paths):
        url, text, lang, error = out["pages"][str(n)]
        expected = extract_article(decoded(FIXTURE_SITE / path), url)
        assert error is None and expected is not None, (path, error)
        assert (text, lang) == (expected.text, expected.lang), path
    assert out["polls"] == 40
    assert len(out["workers"]) >= 1 and out["after_close"] == 0
    # One look per callback object: the article spider's page callback, the feed spider's
    # source callback; not one per response.
    assert len(out["misses"]) <= 4, out["misses"]
