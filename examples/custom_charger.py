"""A charger with behaviour of its own: a worn lock that fails every other unlock, and a
two-connector unit that starts charging by itself. Everything else is libv4e's simulator.

    python examples/custom_charger.py ws://localhost:9000
"""

import sys

import trio
from ocpp.v16 import call, call_result, enums

from libv4e import Charger, ChargerConfig
from libv4e.charger import CommandHandlers


class WornLock(CommandHandlers):
    """Every second UnlockConnector fails, as a worn actuator would; every other command
    is answered as libv4e's simulator does."""

    unlock_attempts = 0

    async def on_unlock_connector(self, req: call.UnlockConnector):
        self.unlock_attempts += 1
        if self.unlock_attempts % 2:
            return call_result.UnlockConnector(enums.UnlockStatus.unlock_failed)
        return await super().on_unlock_connector(req)


async def main(url: str, cp_id: str = "WORN001", *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    charger = Charger(
        ChargerConfig(cp_id=cp_id, connectors=2, max_power_kw=11, auto_charge_tag="FLEET-CARD"),
        handlers=WornLock,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(charger.run, url)
        task_status.started(charger)


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "ws://localhost:9000")
