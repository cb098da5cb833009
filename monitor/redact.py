"""Credentials out of log lines: the one rule for what a log line may not show, and the filter
that applies it to every record at every level (ours, httpx's, Scrapy's)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator

from monitor.models import Config

HIDDEN = "***"
# Query parameters whose value is a credential: a name, or a part of one split at _ - .
# ("access_token", "x-api-key", "hub.signature").
SECRET_PARAMS = frozenset({
    "token", "key", "secret", "sig", "signature", "password", "passwd", "pass", "auth",
    "authorization", "apikey", "credential", "credentials", "session", "jwt",
})
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@\s]*@")
_PARAM = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s]*)")
# A header written out as "Name: value" or "'Name': 'value'" (a dict's repr).
_HEADER = re.compile(
    r"""(?i)\b((?:proxy-)?authorization|cookie|set-cookie|x-api-key|x-auth-token)(['"]?\s*[:=]\s*)"""
    r"""(['"]?)[^'"\r\n]*"""
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the credentials in URLs (user:password@, secret query parameters), in
    credential headers, and every one of `secrets` (e.g. configured header values) hidden."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, HIDDEN)
    text = _URL.sub(lambda m: _redact_url(m.group(0)), text)
    return _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{HIDDEN}", text)


def _redact_url(url: str) -> str:
    url = _USERINFO.sub(lambda m: f"{m.group(1)}{HIDDEN}@", url)
    return _PARAM.sub(
        lambda m: f"{m.group(1)}{m.group(2)}={HIDDEN}" if _secret_param(m.group(2)) else m.group(0),
        url,
    )


def _secret_param(name: str) -> bool:
    name = name.lower()
    return name in SECRET_PARAMS or any(p in SECRET_PARAMS for p in re.split(r"[_\-.\[\]]", name))


class RedactingFilter(logging.Filter):
    """Installed on the root handler: a record is formatted, redacted and then carries only
    the redacted text, so no formatter further on can bring the credential back."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the handler reports it, with our redaction unused
            return True
        record.msg, record.args = redact(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def config_secrets(config: Config) -> Iterator[str]:
    """Values of the config that are credentials wherever they appear: webhook secrets and
    headers, SMTP logins, Apprise URLs (their paths carry the tokens)."""
    if config.http is not None and config.http.token:
        yield config.http.token
    for notifier in config.notifiers:
        yield from (value for _, value in getattr(notifier, "headers", ()))
        yield from getattr(notifier, "urls", ())
        yield from (v for v in (getattr(notifier, "secret", None),) if v)
        smtp = getattr(notifier, "smtp", None)
        if smtp is not None:
            yield from (v for v in (smtp.password,) if v)
