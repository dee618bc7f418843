"""The dashboard end to end in a real headless browser (Debian's chromium via Playwright)."""

from __future__ import annotations

import os
import shutil

import pytest
import trio

from .helpers import api, running_backend
from .test_charger import charger_running

CHROMIUM = os.environ.get("V4E_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def drive_dashboard(url: str, screenshot: str | None) -> list[str]:
    """Load the dashboard, trigger a scenario, watch the status change, clear it."""
    seen = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(f"{url}/dashboard")
        card = page.locator('.charger[data-cp="EVSE001"]')
        card.wait_for(timeout=10_000)
        sync_api.expect(card.locator(".pill.online")).to_be_visible()
        status = card.locator('tr[data-connector="1"] .status')
        sync_api.expect(status).to_have_text("Available")
        seen.append(status.inner_text())
        sync_api.expect(page.locator("#stream.on")).to_be_visible(timeout=10_000)
        page.select_option("#scenario-cp", "EVSE001")
        page.select_option("#scenario-name", "slow_charging")
        page.click("#trigger")
        sync_api.expect(status).to_have_text("Charging", timeout=10_000)
        seen.append(status.inner_text())
        sync_api.expect(card.locator(".pill.offline", has_text="slow_charging")).to_be_visible()
        sync_api.expect(page.locator("#log li").first).to_be_visible()
        if screenshot:
            page.screenshot(path=screenshot, full_page=True)
        page.click("#clear")
        sync_api.expect(card.locator(".pill.offline", has_text="slow_charging")).to_have_count(
            0, timeout=10_000
        )
        sync_api.expect(page.locator(".scenario .phase-cleared").first).to_be_visible()
        seen.append("cleared")
        browser.close()
    return seen


async def test_dashboard_shows_evse001_live_and_drives_a_scenario(tmp_path):
    async with (
        running_backend(str(tmp_path / "v4e.db")) as backend,
        charger_running(backend) as charger,
        api(backend) as client,
    ):
        url = f"http://127.0.0.1:{backend.api_port}"
        shot = os.environ.get("V4E_DASHBOARD_SCREENSHOT")
        seen = await trio.to_thread.run_sync(drive_dashboard, url, shot)
        assert seen == ["Available", "Charging", "cleared"]
        assert charger.faults.active == {}
        assert (await client.get("/demo/scenarios")).json()["active"] == []
