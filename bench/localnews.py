"""Many local outlets for the benchmarks: one HTTP server on 127.0.0.1 that serves N feeds under
N host names (pinned to 127.0.0.1 with crawl.hosts, so each is a domain of its own, as real
outlets are), with ETag/Last-Modified, and items that can be added while it runs. Also a
webhook receiver that notes when each alert arrived. Not a test."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ("regeringen riksdagen kommunen polisen domstolen forskare studien marknaden börsen "
         "kronan räntan inflationen skolan vården klimatet valet partiet ministern utredningen "
         "förslaget beslutet kritiken protesterna avtalet gränsen handeln exporten").split()


@dataclass
class Item:
    key: str
    title: str
    summary: str
    published: datetime
    appeared: float = field(default_factory=time.time)  # when the server started serving it


@dataclass
class Outlets:
    """`count` feeds: feed i is http://outlet-i.bench.test:PORT/rss.xml."""

    count: int
    port: int = 0
    items: dict[int, list[Item]] = field(default_factory=dict)
    bodies: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # feed → (body, etag)
    requests: int = 0
    not_modified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def host(self, n: int) -> str:
        return f"outlet-{n:04d}.bench.test"

    def url(self, n: int) -> str:
        return f"http://{self.host(n)}:{self.port}/rss.xml"

    def add(self, n: int, item: Item, keep: int = 50) -> None:
        with self.lock:
            self.items.setdefault(n, []).insert(0, item)
            del self.items[n][keep:]
            self.bodies[n] = self._render(n)

    def _render(self, n: int) -> tuple[bytes, str]:
        entries = "".join(
            f"<item><title>{escape(i.title)}</title><link>http://{self.host(n)}:{self.port}/a/{i.key}"
            f"</link><guid>{i.key}</guid><pubDate>{format_datetime(i.published, usegmt=True)}</pubDate>"
            f"<description>{escape(i.summary)}</description></item>" for i in self.items.get(n, []))
        body = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Outlet {n}'
                f"</title><link>http://{self.host(n)}/</link>{entries}</channel></rss>").encode()
        return body, '"' + hashlib.sha1(body).hexdigest() + '"'

    def hosts_config(self) -> dict[str, str]:
        return {self.host(n): "127.0.0.1" for n in range(self.count)}


def article(n: int, serial: int, topic: str = "") -> Item:
    """A distinct short news item (distinct words, so each is a story of its own)."""
    words = [WORDS[(serial * 7 + k * 13 + n) % len(WORDS)] for k in range(12)]
    title = f"{topic + ': ' if topic else ''}Nyhet {serial} från kanal {n} om {words[0]} och {words[1]}"
    summary = f"Notis {serial}-{n}: " + " ".join(words) + f". Uppgifterna gäller {serial * 31 % 997}."
    return Item(f"{n}-{serial}", title, summary, datetime.now(UTC) - timedelta(minutes=serial % 600))


def _handler(outlets: Outlets) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with outlets.lock:
                outlets.requests += 1
            host = (self.headers.get("Host") or "").split(":")[0]
            if self.path != "/rss.xml" or not host.startswith("outlet-"):
                return self._send(404, b"not found", {})
            n = int(host.split("-")[1].split(".")[0])
            body, etag = outlets.bodies.get(n) or outlets._render(n)
            if self.headers.get("If-None-Match") == etag:
                with outlets.lock:
                    outlets.not_modified += 1
                return self._send(304, b"", {"ETag": etag})
            return self._send(200, body, {"ETag": etag, "Content-Type": "application/rss+xml"})

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

    return Handler


@contextmanager
def serve_outlets(count: int) -> Iterator[Outlets]:
    outlets = Outlets(count)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(outlets))
    server.daemon_threads = True
    outlets.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield outlets
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Arrivals:
    """Alerts received by the webhook: alert id → (arrival time, article URL)."""

    url: str = ""
    alerts: list[tuple[float, str, str]] = field(default_factory=list)  # (time, id, article url)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def webhook() -> Iterator[Arrivals]:
    arrivals = Arrivals()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps the connection open, as real receivers do

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            now = time.time()
            document = json.loads(body)
            with arrivals.lock:
                arrivals.alerts.append((now, document["id"], document.get("article", {}).get("url", "")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    arrivals.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield arrivals
    finally:
        server.shutdown()
        server.server_close()


def config(outlets: Outlets, interval: str, hook: str | None = None, query: str = "tokajev") -> dict:
    notifiers = ([{"name": "siem", "type": "webhook", "url": hook}] if hook
                 else [{"name": "logg", "type": "log"}])
    return {
        "database": "monitor.db",
        "crawl": {"delay": 0, "timeout": "10s", "allow_private": True, "page_cache": False,
                  "hosts": outlets.hosts_config()},
        "sources": [{"name": f"outlet-{n:04d}", "url": outlets.url(n), "interval": interval,
                     "full_text": False} for n in range(outlets.count)],
        "watchlists": [{"name": "bench", "query": query, "notify": [n["name"] for n in notifiers]}],
        "notifiers": notifiers,
    }
