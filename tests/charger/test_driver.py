"""The driver's side of a simulated charger (dual control), against a real CSMS over real
OCPP: each action with and without each of the five faults, the screen and the car's app
consistent with the charger's real state."""

from __future__ import annotations

import pytest

from libv4e.charger import DriverActionRefused
from libv4e.csms import IdTag
from tests.support import api, charger_running, running_backend, wait_for


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "v4e.db")


async def settled(charger):
    await charger.drain(5)


async def tx_on(backend, cp_id="EVSE001", connector_id=1):
    return backend.csms.transactions.active_on(cp_id, connector_id)


async def test_plug_in_card_charge_stop_unplug(db):
    async with (
        running_backend(db) as backend,
        charger_running(backend, unplug_delay=None, connectors=2) as charger,
    ):
        d = charger.driver
        assert d.screen(1).as_dict() == {
            "connector_id": 1,
            "text": "Plug in or present your card",
            "led": "green",
        }
        car = d.car(1)
        assert (car.plugged, car.charging, car.status) == (False, False, "Not plugged in")
        assert (await d.plug_in(1)).text == "Present your card"
        assert charger.connectors[1].status == "Preparing"
        with pytest.raises(DriverActionRefused, match="already plugged"):
            await d.plug_in(1)
        screen = await d.present_card(1, "USER123")
        assert screen.text == "Charging 22 kW" and screen.led == "blue"
        await settled(charger)
        assert (await tx_on(backend)).id_tag == "USER123"
        with pytest.raises(DriverActionRefused, match="locked while charging") as refused:
            await d.unplug(1)
        assert refused.value.action == "unplug"
        assert charger.connectors[1].status == "Charging"  # nothing changed
        await wait_for(lambda: _energy_flowed(d))
        car = d.car(1)
        assert car.charging and car.power_kw == 22.0 and car.energy_kwh > 0
        assert (await d.present_card(1, "OTHER")).text == "Another card is charging here"
        assert charger.sessions[1].id_tag == "USER123"
        screen = await d.press_stop(1)
        assert screen.text == "Session ended - unplug the cable"
        await settled(charger)
        assert await tx_on(backend) is None
        assert (await d.unplug(1)).text == "Plug in or present your card"
        assert (charger.connectors[1].status, charger.connectors[1].locked) == ("Available", False)
        with pytest.raises(DriverActionRefused, match="no cable"):
            await d.unplug(1)
        with pytest.raises(DriverActionRefused, match="no connector 3"):
            d.screen(3)


async def test_card_tapped_again_stops_its_own_session(db):
    async with running_backend(db) as backend, charger_running(backend, unplug_delay=None) as ch:
        await ch.driver.present_card(1, "USER123")  # plugs in on the way
        assert ch.connectors[1].plugged and 1 in ch.sessions
        assert (await ch.driver.present_card(1, "USER123")).text.startswith("Session ended")
        assert 1 not in ch.sessions


@pytest.mark.parametrize(
    ("status", "text"),
    [("Blocked", "Card blocked"), ("Expired", "Card expired"), ("Invalid", "Card not valid")],
)
async def test_card_refused_at_the_csms(db, status, text):
    async with running_backend(db) as backend, charger_running(backend, unplug_delay=None) as ch:
        await backend.csms.upsert_tag(IdTag("BAD1", status=status))
        await ch.driver.plug_in(1)
        screen = await ch.driver.present_card(1, "BAD1")
        assert (screen.text, screen.led) == (text, "red")
        assert not ch.sessions and ch.connectors[1].status == "Preparing"
        # the notice lasts until something changes
        assert ch.driver.screen(1).text == text
        await ch.driver.unplug(1)
        assert ch.driver.screen(1).text == "Plug in or present your card"


async def trigger(client, name, **params):
    r = await client.post(f"/demo/trigger/{name}", json=params)
    assert r.status_code == 201, r.text


async def test_auth_failure_card_not_valid_then_fixed(db):
    async with (
        running_backend(db) as backend,
        charger_running(backend, unplug_delay=None) as ch,
        api(backend) as client,
    ):
        await trigger(client, "auth_failure", id_tag="USER123")
        await wait_for(lambda: _ok(ch.faults.auth_failure("USER123") is not None))
        assert (await ch.driver.present_card(1, "USER123")).text == "Card not valid"
        assert not ch.sessions
        # the agent's fix: push the local list again
        r = await client.post("/commands/send_local_list/EVSE001", json={"update_type": "Full"})
        assert r.status_code == 200, r.text
        await wait_for(lambda: _ok(ch.faults.auth_failure("USER123") is None))
        assert (await ch.driver.present_card(1, "USER123")).text.startswith("Charging")


async def test_stuck_connector_refuses_unplug_until_unlocked(db):
    async with (
        running_backend(db) as backend,
        charger_running(backend, unplug_delay=None) as ch,
        api(backend) as client,
    ):
        await trigger(client, "stuck_connector", session_seconds=0.2)
        await wait_for(lambda: _ok(ch.connectors[1].status == "Faulted"))
        screen = ch.driver.screen(1)
        assert (screen.text, screen.led) == ("Error: cable locked", "red")
        with pytest.raises(DriverActionRefused, match="stuck"):
            await ch.driver.unplug(1)
        assert ch.driver.car(1).plugged
        r = await client.post("/commands/unlock_connector/EVSE001", json={"connector_id": 1})
        assert r.status_code == 200, r.text
        await wait_for(lambda: _ok(not ch.connectors[1].locked))
        await ch.driver.unplug(1)
        assert ch.driver.screen(1).text == "Plug in or present your card"


async def test_slow_charging_shows_on_screen_and_car(db):
    async with (
        running_backend(db) as backend,
        charger_running(backend, unplug_delay=None) as ch,
        api(backend) as client,
    ):
        await trigger(client, "slow_charging", id_tag="USER123")
        await wait_for(lambda: _ok(1 in ch.sessions))
        assert ch.driver.screen(1).text == "Charging 1.4 kW"
        assert ch.driver.car(1).power_kw == 1.4


async def test_session_start_failure_card_accepted_nothing_starts(db):
    async with (
        running_backend(db) as backend,
        charger_running(backend, unplug_delay=None) as ch,
        api(backend) as client,
    ):
        await trigger(client, "session_start_failure")
        await wait_for(lambda: _ok(ch.faults.session_start_failure(1)))
        await ch.driver.plug_in(1)
        assert (await ch.driver.present_card(1, "USER123")).text == "Starting, please wait"
        assert not ch.sessions and not ch.driver.car(1).charging


@pytest.mark.parametrize("mode", ["silent", "dead"])
async def test_offline_charger_screen_is_blank(db, mode):
    async with (
        running_backend(db) as backend,
        charger_running(backend, unplug_delay=None) as ch,
        api(backend) as client,
    ):
        assert not ch.driver.screen(1).blank
        await trigger(client, "offline_charger", mode=mode, recover_after=60)
        await wait_for(lambda: _ok(ch.driver.dark()))
        screen = ch.driver.screen(1)
        assert (screen.text, screen.led, screen.blank) == ("", "off", True)
        # the car still knows its own battery
        assert ch.driver.car(1).soc_percent == 20.0


async def _ok(value):
    return value


async def _energy_flowed(driver):
    return driver.car(1).energy_kwh > 0
