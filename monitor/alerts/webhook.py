"""Webhook delivery: POST the stored JSON document, signed with HMAC-SHA256 when a secret is set."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import httpx

from monitor import __version__
from monitor.errors import DeliveryError
from monitor.models import PendingAlert, WebhookNotifier

SIGNATURE_HEADER = "X-Monitor-Signature"


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


async def send(notifier: WebhookNotifier, alert: PendingAlert) -> None:
    body = alert.body.encode("utf-8")
    try:
        # `timeout` bounds the whole send (connect, request, answer): httpx's own timeouts are
        # per read, so a receiver trickling its answer would otherwise hold delivery for ever.
        async with asyncio.timeout(notifier.timeout), httpx.AsyncClient(
            timeout=notifier.timeout, follow_redirects=False
        ) as client:
            response = await client.post(
                notifier.url, content=body, headers=request_headers(notifier, alert, body)
            )
    except TimeoutError:
        # The receiver may have the alert: it stays pending and goes again with the same
        # Idempotency-Key and body.
        raise DeliveryError(f"no complete answer within {notifier.timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"receiver answered HTTP {response.status_code}")
