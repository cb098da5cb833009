"""Real servers for the tests, all on 127.0.0.1: a news site with conditional GET, a webhook
receiver, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller

FIXTURE_SITE = Path(__file__).parent / "fixtures" / "site"
TEMPLATED = (".xml", ".rss", ".atom")
CONTENT_TYPES = {
    ".html": "text/html",
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".txt": "text/plain",
}


@dataclass
class Site:
    """A copy of a fixture folder served over HTTP; tests may edit files between cycles."""

    root: Path
    base: str = ""
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status)
    failures: dict[str, int] = field(default_factory=dict)  # path → status to answer instead
    conditional: bool = True

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def write(self, path: str, content: str | bytes) -> None:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_bytes(content)

    def statuses(self, path: str) -> list[int]:
        return [status for _, p, status in self.requests if p == path]


def _site_handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            status = self._respond(path)
            site.requests.append(("GET", self.path, status))

        def _respond(self, path: str) -> int:
            if path in site.failures:
                return self._send(site.failures[path], b"failure injected by the test")
            file = (site.root / path.lstrip("/")).resolve()
            if file.is_dir():
                file = file / "index.html"
            if not file.is_relative_to(site.root.resolve()) or not file.is_file():
                return self._send(404, b"not found")
            body = file.read_bytes()
            if file.suffix in TEMPLATED:
                body = body.replace(b"{base}", site.base.encode())
            etag = '"' + hashlib.sha1(body).hexdigest() + '"'
            modified = formatdate(file.stat().st_mtime, usegmt=True)
            if site.conditional and (
                self.headers.get("If-None-Match") == etag
                or (self.headers.get("If-Modified-Since") == modified
                    and not self.headers.get("If-None-Match"))
            ):
                return self._send(304, b"", {"ETag": etag, "Last-Modified": modified})
            headers = {"Content-Type": _content_type(file)}
            if site.conditional:
                headers |= {"ETag": etag, "Last-Modified": modified}
            return self._send(200, body, headers)

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> int:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)
            return status

    return Handler


def _content_type(file: Path) -> str:
    if file.name.endswith(".latin1.html"):
        return "text/html; charset=iso-8859-1"
    return CONTENT_TYPES.get(file.suffix, "application/octet-stream")


@contextmanager
def serve(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_handler(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A server on a free 127.0.0.1 port with this handler, one daemon thread per request (a
    handler held back by a test never keeps the test process alive); yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    with serve(server) as base:
        yield base


@contextmanager
def news_site(tmp: Path, source: Path = FIXTURE_SITE) -> Iterator[Site]:
    root = tmp / "site"
    shutil.copytree(source, root)
    site = Site(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _site_handler(site))
    with serve(server) as base:
        site.base = base
        yield site


# --- webhook receiver --------------------------------------------------------------------


@dataclass
class Receiver:
    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)  # accepted posts
    answer: int = 200
    # Answers for the next posts, one each, before `answer` applies again: (status, headers).
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    # Every post, accepted or not: (time.monotonic(), Idempotency-Key, status answered).
    attempts: list[tuple[float, str, int]] = field(default_factory=list)
    connections: int = 0  # TCP connections the receiver accepted

    def bodies(self) -> list[bytes]:
        return [body for _, body in self.received]

    def next_answer(self) -> tuple[int, dict[str, str]]:
        return self.script.pop(0) if self.script else (self.answer, {})


def _receiver_handler(receiver: Receiver, keep_alive: bool = False) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keeps a connection open for the next post, as real receivers do.
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def setup(self) -> None:
            super().setup()
            with lock:
                receiver.connections += 1

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                status, headers = receiver.next_answer()
                receiver.attempts.append(
                    (time.monotonic(), self.headers.get("Idempotency-Key", ""), status))
                if status < 300:
                    receiver.received.append((dict(self.headers.items()), body))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def webhook_receiver(keep_alive: bool = False) -> Iterator[Receiver]:
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _receiver_handler(receiver, keep_alive))
    with serve(server) as base:
        receiver.url = f"{base}/hooks/news"
        yield receiver


RSS = "application/rss+xml; charset=utf-8"
HTML = "text/html; charset=utf-8"


class QuietHandler(BaseHTTPRequestHandler):
    """A test server's handler: no access log, and `answer` for a whole response."""

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, body: bytes, content_type: str, status: int = 200) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the monitor hung up (it was stopped, or killed): nothing to answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- SMTP ----------------------------------------------------------------------------------


@dataclass
class Mailbox:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    mailbox = Mailbox(port=free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
