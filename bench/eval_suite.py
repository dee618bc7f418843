"""``python -m bench.eval_suite`` (part of ``nox -s bench``): the speed target of
``v4e eval`` — the built-in suite × 4 trials with the scripted agent, 2 worker processes,
under 5 minutes on 2 cores (issue #23). Prints the figure and writes JSON to
bench/results/eval-<date>.json, beside the target."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform

from bench.__main__ import RESULTS
from libv4e_apps.eval.agents import AgentSpec
from libv4e_apps.eval.runner import run_suite
from libv4e_apps.eval.tasks import load_tasks

TARGET_S = 300.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--parallel", type=int, default=2)
    args = p.parse_args()
    tasks = load_tasks()
    summary = run_suite(tasks, AgentSpec("scripted"), trials=args.trials, parallel=args.parallel)
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "tasks": summary["tasks"],
        "trials": summary["trials"],
        "parallel": args.parallel,
        "episodes": summary["episodes"],
        "wall_s": summary["wall_s"],
        "target_wall_s": TARGET_S,
        "within_target": summary["wall_s"] < TARGET_S,
        "episodes_per_s": round(summary["episodes"] / max(summary["wall_s"], 1e-9), 2),
        "simulated_s": round(sum(r.get("sim_s", 0) for r in summary["results"]), 1),
        "pass_hat_k": summary["pass_hat_k"],
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"eval-{report['date'].replace(':', '')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
