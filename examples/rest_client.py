"""Driving the REST API from a script (what a voice agent's backend does): find the
charger, start a session, watch the power, stop it.

    python examples/rest_client.py http://localhost:8000 EVSE001
"""

import sys
import time

import httpx


def main(base: str = "http://localhost:8000", cp_id: str = "EVSE001") -> dict:
    with httpx.Client(base_url=base, timeout=30) as api:
        state = api.get(f"/chargers/{cp_id}").json()
        print(f"{cp_id} is {state['connection']}, connector 1 {state['connectors'][1]['status']}")
        started = api.post(
            f"/commands/remote_start/{cp_id}", json={"id_tag": "USER123", "connector_id": 1}
        ).json()
        print("remote start:", started["status"])
        for _ in range(50):
            connector = api.get(f"/chargers/{cp_id}").json()["connectors"][1]
            charging = connector["status"] == "Charging" and connector["transaction_id"]
            if charging and connector["meter"]["power_w"] is not None:  # first meter value in
                break
            time.sleep(0.2)
        print(
            f"charging at {connector['meter']['power_w'] / 1000:.1f} kW, "
            f"transaction {connector['transaction_id']}"
        )
        stopped = api.post(
            f"/commands/remote_stop/{cp_id}", json={"transaction_id": connector["transaction_id"]}
        ).json()
        print("remote stop:", stopped["status"])
        return {
            "start": started["status"],
            "stop": stopped["status"],
            "transaction_id": connector["transaction_id"],
            "power_w": connector["meter"]["power_w"],
        }


if __name__ == "__main__":
    main(*sys.argv[1:3])
