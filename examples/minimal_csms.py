"""A minimal OCPP 1.6-J central system with libv4e: boot, heartbeat, status. ~30 lines.

python examples/minimal_csms.py      # then point a charger at ws://localhost:9000/<id>
"""

import datetime as dt

import trio
from ocpp.v16 import call, call_result

from libv4e import OcppConnection, serve_ocpp


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


async def on_connect(conn: OcppConnection) -> None:
    async def boot(msg: call.BootNotification) -> call_result.BootNotification:
        print(f"{conn.cp_id}: {msg.charge_point_vendor} {msg.charge_point_model} booted")
        return call_result.BootNotification(now(), 30, "Accepted")

    async def heartbeat(msg: call.Heartbeat) -> call_result.Heartbeat:
        return call_result.Heartbeat(now())

    async def status(msg: call.StatusNotification) -> call_result.StatusNotification:
        print(f"{conn.cp_id}: connector {msg.connector_id} is {msg.status}")
        return call_result.StatusNotification()

    await conn.serve(
        {"BootNotification": boot, "Heartbeat": heartbeat, "StatusNotification": status}
    )


async def main(port: int = 9000, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    await serve_ocpp(on_connect, "127.0.0.1", port, task_status=task_status)


if __name__ == "__main__":
    trio.run(main)
