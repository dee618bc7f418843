"""Make the dashboard screenshots in docs/ (run: python docs/screenshots.py [--out docs]).

Starts a backend on ephemeral ports with a two-connector simulated charger, drives the
dashboard in headless Chromium (Playwright, Debian's chromium) through a few states and
saves full-page PNGs at 1600 and 400 px wide:

- ``dashboard.png``: slow charging on connector 1 (the chart's gap between 22 kW
  offered and 1.4 kW delivered), a normal session on connector 2, the agent's diagnosis;
- ``dashboard-400.png``: the same at 400 px;
- ``dashboard-offline.png``: the charger gone silent (offline_charger, mode silent),
  shown unresponsive with its connectors greyed out, without a reload.

tests/apps/test_dashboard.py runs this script into a temporary directory so it cannot rot.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
import trio

from libv4e.charger import Charger, ChargerConfig
from libv4e.csms import CsmsConfig
from libv4e_apps.csms.backend import BackendConfig, serve_backend

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
HEARTBEAT = 2


def chromium_path() -> str:
    return os.environ.get("V4E_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def shoot(url: str, out: Path, chromium: str) -> list[Path]:
    """Drive the page and save the screenshots (runs in a thread: Playwright is sync)."""
    from playwright.sync_api import expect, sync_playwright

    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{url}/dashboard")
        card = page.locator('.charger[data-cp="EVSE001"]')
        expect(card.locator(".link.online")).to_be_visible(timeout=15_000)
        chart = card.locator('.connector[data-connector="1"] .chart')
        expect(chart.locator("canvas")).to_be_visible(timeout=30_000)
        expect(card.locator('.connector[data-connector="1"] .chart-caption.gap')).to_be_visible(
            timeout=30_000
        )
        page.wait_for_function(
            '() => Number(document.querySelector(\'.charger[data-cp="EVSE001"] '
            '.connector[data-connector="1"] .chart\').dataset.points) >= 8',
            timeout=30_000,
        )
        card.get_by_role("button", name="Refresh diagnosis of EVSE001").click()
        expect(card.locator(".diagnosis .verdict")).to_be_visible(timeout=20_000)
        card.locator("details.runs").evaluate("d => d.open = true")
        page.locator("#log li").first.wait_for(timeout=10_000)
        page.wait_for_timeout(500)
        saved.append(out / "dashboard.png")
        page.screenshot(path=str(saved[-1]), full_page=True)

        page.set_viewport_size({"width": 400, "height": 900})
        page.wait_for_timeout(800)
        saved.append(out / "dashboard-400.png")
        page.screenshot(path=str(saved[-1]), full_page=True)

        page.set_viewport_size({"width": 1600, "height": 1000})
        page.select_option("#scenario-cp", "EVSE001")
        page.select_option("#scenario-name", "offline_charger")
        page.select_option("#scenario-mode", "silent")
        page.click("#trigger")
        expect(card.locator(".link.unresponsive")).to_be_visible(timeout=HEARTBEAT * 4_000)
        # a DataTransfer whose data is JSON, opened: shown decoded, not escaped
        page.locator("#log li", has_text="FaultStart").first.locator("summary").click()
        page.wait_for_timeout(300)
        saved.append(out / "dashboard-offline.png")
        page.screenshot(path=str(saved[-1]), full_page=True)
        browser.close()
    return saved


async def main(out: Path, chromium: str) -> list[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        config = BackendConfig(
            host="127.0.0.1",
            ws_port=0,
            api_port=0,
            db_path=str(Path(tmp) / "v4e.db"),
            csms=CsmsConfig(heartbeat_interval=HEARTBEAT),
            tune_gc=False,
        )
        async with trio.open_nursery() as nursery:
            backend = await nursery.start(
                lambda task_status: serve_backend(config, task_status=task_status)
            )
            charger = Charger(
                ChargerConfig(cp_id="EVSE001", connectors=2, reboot_delay=0.3, unplug_delay=0.5)
            )
            await nursery.start(charger.run, f"ws://127.0.0.1:{backend.ws_port}")
            with trio.fail_after(15):
                await charger.connected_event.wait()
            base = f"http://127.0.0.1:{backend.api_port}"
            async with httpx.AsyncClient(base_url=base, timeout=15) as client:
                # filed before any scenario runs, so that it escalates none
                answer = await client.post(
                    "/tickets",
                    json={"cp_id": "EVSE001", "summary": "Example: driver reports a slow charge"},
                )
                answer.raise_for_status()
                answer = await client.post(
                    "/commands/change_configuration/EVSE001",
                    json={"key": "MeterValueSampleInterval", "value": "1"},
                )
                answer.raise_for_status()
                answer = await client.post(
                    "/demo/trigger/slow_charging", json={"cp_id": "EVSE001", "connector_id": 1}
                )
                answer.raise_for_status()
                answer = await client.post(
                    "/commands/remote_start/EVSE001",
                    json={"id_tag": "USER123", "connector_id": 2},
                )
                answer.raise_for_status()
            saved = await trio.to_thread.run_sync(shoot, base, out, chromium)
            nursery.cancel_scope.cancel()
    return saved


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--chromium", default=chromium_path())
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in trio.run(main, args.out, args.chromium):
        print(path)
    sys.exit(0)
