"""Webhook delivery: POST the stored JSON document, signed with HMAC-SHA256 when a secret is set."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache

import httpx

from monitor import __version__
from monitor.alerts.render import Renderer
from monitor.errors import DeliveryError
from monitor.models import PendingAlert, WebhookNotifier

SIGNATURE_HEADER = "X-Monitor-Signature"
# Client errors that say "not now" rather than "never": everything else in 4xx is a refusal of
# this alert for good.
TRANSIENT_4XX = frozenset({408, 429})
# What a receipt quotes of the receiver's answer.
ANSWER_SHOWN = 300
# The clients of the current `connections()` block, by notifier (per task: a ContextVar).
_CLIENTS: ContextVar[dict[str, httpx.AsyncClient] | None] = ContextVar("webhook_clients", default=None)


@cache
def tls_context() -> ssl.SSLContext:
    """The certificate store, loaded once per process: loading it for every client cost about
    0.1 s per alert, more than all the rest of sending one."""
    return httpx.create_ssl_context()


@asynccontextmanager
async def connections() -> AsyncIterator[None]:
    """Within this block, this task's sends reuse one client per notifier, and with it the
    open connection to its receiver: a pass of thousands of alerts to one receiver would
    otherwise open as many connections."""
    clients: dict[str, httpx.AsyncClient] = {}
    token = _CLIENTS.set(clients)
    try:
        yield
    finally:
        _CLIENTS.reset(token)
        for client in clients.values():
            await client.aclose()


def _client(notifier: WebhookNotifier) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=notifier.timeout, follow_redirects=False, verify=tls_context())


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def request_headers(notifier: WebhookNotifier, alert: PendingAlert, body: bytes) -> dict[str, str]:
    headers = dict(notifier.headers)
    headers.update({
        "Content-Type": "application/json",
        "User-Agent": f"monitor/{__version__}",
        "Idempotency-Key": alert.id,
    })
    if notifier.secret:
        headers[SIGNATURE_HEADER] = signature(notifier.secret, body)
    return headers


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def refusal(response: httpx.Response) -> DeliveryError:
    status = response.status_code
    answer = f"receiver answered HTTP {status}"
    if 400 <= status < 500 and status not in TRANSIENT_4XX:
        return DeliveryError(f"{answer} (refused for good)", permanent=True)
    return DeliveryError(answer, retry_after=retry_after(response.headers.get("Retry-After")))


def receipt(response: httpx.Response) -> str:
    text = " ".join(response.text[:ANSWER_SHOWN].split())
    return f"HTTP {response.status_code} {response.reason_phrase}" + (f": {text}" if text else "")


async def send(notifier: WebhookNotifier, alert: PendingAlert, renderer: Renderer | None = None) -> str:
    """POST the stored document as is (a receiver reads JSON, not our templates, so `renderer`
    is unused); returns the receiver's answer, raises DeliveryError unless it was 2xx."""
    body = alert.body.encode("utf-8")
    headers = request_headers(notifier, alert, body)
    clients = _CLIENTS.get()
    try:
        # `timeout` bounds the whole send (connect, request, answer): httpx's own timeouts are
        # per read, so a receiver trickling its answer would otherwise hold delivery for ever.
        async with asyncio.timeout(notifier.timeout):
            if clients is None:
                async with _client(notifier) as client:
                    response = await client.post(notifier.url, content=body, headers=headers)
            else:
                client = clients.get(notifier.name) or clients.setdefault(notifier.name, _client(notifier))
                response = await client.post(notifier.url, content=body, headers=headers)
    except TimeoutError:
        # The receiver may have the alert: it stays pending and goes again with the same
        # Idempotency-Key and body.
        raise DeliveryError(f"no complete answer within {notifier.timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
    if not 200 <= response.status_code < 300:
        raise refusal(response)
    return receipt(response)
