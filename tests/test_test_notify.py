"""`monitor test-notify NAME`: one marked test message through one notifier, the receiver's
answer printed, exit 0 when it took it and 1 when it refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import monitor_config, run_monitor, write_config
from servers import Mailbox, Receiver, Site
from test_apprise import Ntfy, ntfy_server

NTFY_SETTINGS = {"name": "chatt", "type": "apprise"}


@pytest.fixture
def ntfy() -> Iterator[Ntfy]:
    with ntfy_server() as server:
        yield server


def config_with_all(tmp_path: Path, site: Site, receiver: Receiver, mailbox: Mailbox,
                    ntfy: Ntfy | None = None) -> Path:
    settings = monitor_config(site, receiver, mailbox, feeds=("rss/utrikes.xml",))
    if ntfy is not None:
        settings["notifiers"].append({**NTFY_SETTINGS, "urls": [ntfy.url("larm")], "timeout": 10})
    return write_config(tmp_path, settings)


def test_test_notify_webhook_and_email(tmp_path: Path, site: Site, receiver: Receiver,
                                       mailbox: Mailbox) -> None:
    config = config_with_all(tmp_path, site, receiver, mailbox)

    hook = run_monitor(config, "test-notify", "siem")
    mail = run_monitor(config, "test-notify", "analytiker")

    assert hook.returncode == 0, hook.stdout + hook.stderr
    assert "test message to siem (webhook) delivered: HTTP 200 OK" in hook.stdout
    [(headers, body)] = receiver.received
    document = json.loads(body)
    assert document["kind"] == "test" and document["notifier"] == "siem"
    assert headers["Idempotency-Key"] == document["id"]
    assert "X-Monitor-Signature" in headers

    assert mail.returncode == 0, mail.stdout + mail.stderr
    assert "250 Message accepted for delivery" in mail.stdout
    [message] = mailbox.messages
    assert "TEST" in message["Subject"]
    assert "THIS IS A TEST MESSAGE" in message.get_body(("plain",)).get_content()
    assert message["List-Id"] == "test <test.monitor>"
    assert not (tmp_path / "monitor.db").exists(), "a test message is not stored"


def test_test_notify_apprise(tmp_path: Path, site: Site, receiver: Receiver, mailbox: Mailbox,
                             ntfy: Ntfy) -> None:
    config = config_with_all(tmp_path, site, receiver, mailbox, ntfy)

    result = run_monitor(config, "test-notify", "chatt")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "test message to chatt (apprise) delivered: apprise: ntfy" in result.stdout
    [message] = ntfy.messages
    assert message["topic"] == "larm"
    assert "TEST" in message["title"] and "THIS IS A TEST MESSAGE" in message["message"]
    assert "larm" not in result.stdout.replace("topic 'larm'", ""), "the Apprise URL is not printed"


def test_test_notify_exits_1_when_the_receiver_refuses(tmp_path: Path, site: Site,
                                                       receiver: Receiver, mailbox: Mailbox,
                                                       ntfy: Ntfy) -> None:
    config = config_with_all(tmp_path, site, receiver, mailbox, ntfy)
    receiver.answer = 403
    ntfy.answer = 503

    hook = run_monitor(config, "test-notify", "siem")
    chat = run_monitor(config, "test-notify", "chatt")

    assert hook.returncode == 1
    assert "not delivered: receiver answered HTTP 403" in hook.stdout
    assert chat.returncode == 1
    assert "not delivered" in chat.stdout and "503" in chat.stdout
    assert receiver.received == [] and ntfy.messages == []


def test_test_notify_names_the_notifiers_when_the_name_is_unknown(
    tmp_path: Path, site: Site, receiver: Receiver, mailbox: Mailbox
) -> None:
    config = config_with_all(tmp_path, site, receiver, mailbox)

    result = run_monitor(config, "test-notify", "slack")

    assert result.returncode not in (0, 1)
    assert "no notifier named 'slack' (notifiers: logg, siem, analytiker)" in result.stderr
