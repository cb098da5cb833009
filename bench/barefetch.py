"""The baseline fetch of bench/ingest.py --outlet: a minimal Scrapy spider that fetches the given
pages and does nothing with them, with the daemon's own concurrency settings. Run by the bench
in a subprocess of its own (Scrapy's reactor runs once per process):

    python bench/barefetch.py PLAN.json

PLAN.json: {"settings": {Scrapy settings}, "pages": [[download slot, URL], …]}. Prints one JSON
line: pages fetched, bytes, and the seconds from the first request to the last response.
Not a test."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response


class BareSpider(scrapy.Spider):
    name = "bare"

    def __init__(self, pages: list[list[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pages = pages
        self.fetched = 0
        self.bytes = 0
        self.started = 0.0
        self.finished = 0.0

    async def start(self) -> AsyncIterator[scrapy.Request]:
        self.started = time.perf_counter()
        for slot, url in self.pages:
            yield scrapy.Request(url, callback=self.parse, meta={"download_slot": slot}, dont_filter=True)

    def parse(self, response: Response) -> None:
        self.fetched += 1
        self.bytes += len(response.body)
        self.finished = time.perf_counter()


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    process = CrawlerProcess({**plan["settings"], "LOG_LEVEL": "ERROR", "TELNETCONSOLE_ENABLED": False})
    crawler = process.create_crawler(BareSpider)
    process.crawl(crawler, pages=plan["pages"])
    process.start()
    spider = crawler.spider
    print(json.dumps({"pages": spider.fetched, "bytes": spider.bytes,
                      "seconds": spider.finished - spider.started}))


if __name__ == "__main__":
    main()
