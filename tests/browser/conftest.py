"""Fixtures of the browser tests beyond the shared live app: the app as its demo mode serves it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import serving


@pytest.fixture(autouse=True)
def patient_expect():
    """The server, the real CLI, git and chromium share two loaded cores: what a page shows after a
    turn or a task's run may take longer than Playwright's default 5 s to come."""
    expect.set_options(timeout=15_000)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture(scope="module")
def demo_app(stub_api, tmp_path_factory):
    """The app in its offline demo mode (as `scripts/run` starts it with no API key): every page
    says it is the demo."""
    with serving(stub_api, tmp_path_factory.mktemp("demo-app"), env={"APP_DEMO_MODE": "1"}) as app:
        yield app
