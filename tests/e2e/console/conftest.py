"""The console's browser tests: each test starts the whole stack (every service behind the
gateway, a mail sink) and signs in through the console's own sign-in screen."""

from __future__ import annotations

import pytest

from tests.harness.console import start_console_stack
from tests.harness.mail import MailSink


@pytest.fixture
def mail(tmp_path):
    sink = MailSink(tmp_path).start()
    yield sink
    sink.stop()


@pytest.fixture
def console(make_database, start_service, mail):
    """The running stack with the console: ``console.url``, ``await console.sign_in(page, role, name)``,
    and the campaigns stack's helpers (``post``, ``get``, ``members``, ``profiles``, ``db`` …)."""
    return start_console_stack(make_database, start_service, mail)
