"""The ``v4e`` console script as a user runs it: a real process, real ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.support import ROOT, poll, read_until, start, stop


@pytest.mark.slow
def test_v4e_up_serves_the_seed_api_with_evse001(tmp_path):
    proc = start(
        "up",
        "--host",
        "127.0.0.1",
        "--ws-port",
        "0",
        "--api-port",
        "0",
        "--db",
        str(tmp_path / "v4e.db"),
        cwd=ROOT,
    )
    try:
        match, _ = read_until(proc, r"REST API:\s+(http://\S+)")
        base = match.group(1)
        status = poll_api(
            lambda: (s := httpx.get(f"{base}/status").json())["total_online"] == 1 and s
        )
        assert status["charge_points"]["EVSE001"]["connection"] == "online"
        r = httpx.post(
            f"{base}/commands/remote_start/EVSE001", json={"id_tag": "USER123", "connector_id": 1}
        )
        assert r.json()["status"] == "Accepted"
        poll_api(
            lambda: (
                httpx.get(f"{base}/status").json()["charge_points"]["EVSE001"]["connectors"][1][
                    "status"
                ]
                == "Charging"
            )
        )
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "Traceback" not in out


@pytest.mark.slow
def test_csms_and_sim_as_separate_processes(tmp_path):
    csms = start(
        "csms",
        "--host",
        "127.0.0.1",
        "--ws-port",
        "0",
        "--api-port",
        "0",
        "--db",
        str(tmp_path / "v4e.db"),
        cwd=ROOT,
    )
    sim = None
    try:
        match, _lines = read_until(csms, r"OCPP 1.6-J:\s+(ws://\S+)/\{cp_id\}")
        ws = match.group(1)
        api, _ = read_until(csms, r"REST API:\s+(http://\S+)")
        base = api.group(1)
        sim = start("sim", "--url", ws, "--id", "CP007", "--count", "3", cwd=ROOT)
        status = poll_api(
            lambda: (s := httpx.get(f"{base}/status").json())["total_online"] == 3 and s
        )
        assert sorted(status["charge_points"]) == ["CP007", "CP008", "CP009"]
    finally:
        for proc in (sim, csms):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=20)
    assert csms.returncode == 0


@pytest.mark.slow
def test_v4e_demo_plays_all_five_scenarios_to_resolution():
    # nothing listens on port 1: the demo starts an embedded backend and charger
    proc = subprocess.run(
        [sys.executable, "-m", "libv4e_apps", "demo", "--url", "http://127.0.0.1:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "All scenarios handled." in out
    for name in (
        "session_start_failure",
        "stuck_connector",
        "offline_charger",
        "auth_failure",
        "slow_charging",
    ):
        row = next(line for line in out.splitlines() if line.startswith(f"│ {name}"))
        assert "resolved" in row
    assert "Driver: It says it's available but nothing happens." in out


@pytest.mark.slow
def test_v4e_demo_escalates_a_dead_charger_with_a_ticket():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "libv4e_apps",
            "demo",
            "--url",
            "http://127.0.0.1:1",
            "--scenario",
            "offline_charger",
            "--offline-mode",
            "dead",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "escalated" in proc.stdout
    assert "create_ticket" in proc.stdout


def test_set_password_stores_a_hash_and_refuses_bad_passwords(tmp_path):
    import sqlite3

    db = str(tmp_path / "v4e.db")
    cmd = [sys.executable, "-m", "libv4e_apps", "set-password", "EVSE001", "--db", db, "--password"]
    short = subprocess.run([*cmd, "short"], cwd=ROOT, capture_output=True, text=True)
    assert short.returncode == 2
    assert "16 to 40" in short.stderr
    good = subprocess.run([*cmd, "correct-horse-battery"], cwd=ROOT, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    stored = sqlite3.connect(db).execute("SELECT cp_id, password_hash FROM secrets").fetchall()
    assert stored[0][0] == "EVSE001"
    assert stored[0][1].startswith("pbkdf2_sha256$")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["csms", "--db", "postgresql:v4e"], "--db: a PostgreSQL URL looks like"),
        (["csms", "--db", "mysql://u@h/v4e"], "--db: unsupported database URL scheme 'mysql'"),
        (["up", "--db", "sqlite:///v4e.db"], "--db: unsupported database URL scheme 'sqlite'"),
        (["set-password", "CP1", "--db", "redis://h/0"], "--db: unsupported"),
        (["csms", "--workers", "2", "--db", "v4e.db"], "--workers: several workers share"),
    ],
)
def test_db_urls_other_than_postgresql_are_refused_in_one_line(tmp_path, args, message):
    env = {**os.environ, "V4E_NEW_PASSWORD": "a-long-enough-password-1"}
    out = subprocess.run(
        [sys.executable, "-m", "libv4e_apps", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.startswith(message)
    assert out.stderr.count("\n") == 1  # one line
    assert list(tmp_path.iterdir()) == []  # no directory named "postgresql:", no file


def test_unreachable_postgresql_is_one_line_and_workers_give_up(tmp_path):
    url = "postgresql://nobody@127.0.0.1:1/v4e"  # nothing listens on port 1
    base = [sys.executable, "-m", "libv4e_apps", "csms", "--ws-port", "0", "--api-port", "0"]
    out = subprocess.run(
        [*base, "--db", url], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert out.stderr.startswith("v4e: cannot open database postgresql://nobody@127.0.0.1:1/v4e")
    assert "Connection refused" in out.stderr
    assert out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr
    out = subprocess.run(
        [*base, "--db", url, "--workers", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "v4e: worker 1 exited 3 times in a row right after starting" in out.stderr.replace(
        "worker 0", "worker 1"
    )
    assert "Traceback" not in out.stderr


def poll_api(check, timeout=15):
    """``poll`` of the REST API of a process still starting (connection errors: not yet)."""
    return poll(check, timeout, 0.2, ignore=(httpx.HTTPError,))


def test_the_simulators_ocpp_version_is_chosen_per_charger():
    from libv4e_apps.cli import build_parser
    from libv4e_apps.simulator.cli import fleet_config

    def versions(*argv):
        args = build_parser().parse_args(["sim", "--count", "4", *argv])
        return [c.ocpp_version for c in fleet_config(args, "ws://x").chargers]

    assert versions() == ["1.6"] * 4
    assert versions("--ocpp", "2.0.1") == ["2.0.1"] * 4
    assert versions("--ocpp", "ocpp2.0.1") == ["2.0.1"] * 4
    assert versions("--ocpp", "mixed") == ["1.6", "2.0.1", "1.6", "2.0.1"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim", "--ocpp", "2.1"])


def test_v4e_sim_speaks_2_0_1_to_a_v4e_csms(tmp_path):
    """Two processes: the CSMS, and `v4e sim --ocpp 2.0.1` charging on its own; the
    session is booked from TransactionEvents."""
    db = str(tmp_path / "v4e.db")
    csms = start(
        "csms", "--host", "127.0.0.1", "--ws-port", "0", "--api-port", "0", "--db", db, cwd=ROOT
    )
    sim = None
    try:
        ws, _ = read_until(csms, r"ws://\S+:(\d+)")
        api, _ = read_until(csms, r"http://\S+:(\d+)")
        base = f"http://127.0.0.1:{api.group(1)}"
        sim = start(
            "sim",
            "--url",
            f"ws://127.0.0.1:{ws.group(1)}",
            "--id",
            "S201",
            "--ocpp",
            "2.0.1",
            "--auto-charge",
            "USER123",
            cwd=ROOT,
        )

        def booked():
            txs = httpx.get(f"{base}/transactions", params={"cp_id": "S201"}).json()
            return txs["transactions"]

        (tx,) = poll(booked, timeout=60)
        assert tx["charger_transaction_id"] and tx["active"]
        charger = httpx.get(f"{base}/chargers/S201").json()
        assert charger["ocpp_version"] == "2.0.1"
    finally:
        stop(sim, csms, timeout=10)


def test_v4e_demo_resolves_all_five_scenarios_on_a_2_0_1_evse001(tmp_path):
    """`v4e up --ocpp 2.0.1` (EVSE001 a 2.0.1 station) and `v4e demo` against it: the
    agent side is version-blind — every scenario diagnosed and resolved."""
    db = str(tmp_path / "v4e.db")
    up = start(
        "up", "--ocpp", "2.0.1", "--host", "127.0.0.1", "--ws-port", "0", "--api-port", "0",
        "--db", db, cwd=tmp_path,
    )  # fmt: skip
    try:
        match, _ = read_until(up, r"REST API:\s+(http://\S+)")
        base = match.group(1)
        poll(lambda: httpx.get(f"{base}/chargers/EVSE001").json().get("connection") == "online",
             timeout=30, ignore=(httpx.HTTPError,))  # fmt: skip
        assert httpx.get(f"{base}/chargers/EVSE001").json()["ocpp_version"] == "2.0.1"
        proc = subprocess.run(
            [sys.executable, "-m", "libv4e_apps", "demo", "--url", base],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        for name in (
            "session_start_failure",
            "stuck_connector",
            "offline_charger",
            "auth_failure",
            "slow_charging",
        ):
            row = next(line for line in proc.stdout.splitlines() if line.startswith(f"│ {name}"))
            assert "resolved" in row, row
    finally:
        stop(up, timeout=10)
