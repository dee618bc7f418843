"""``v4e eval``: run a task suite against an agent, K trials each, N episodes at a time,
and report rewards, failures in words, tool calls, turns, spoken words and pass^k."""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import fnmatch
import json
import logging
import math
import multiprocessing
import os
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import httpx

from .agents import AgentSpec
from .episode import DRIVER_SCRIPTED, blank_result, run_episode
from .tasks import Task, TaskError, load_tasks

__all__ = ["add_eval_parser", "markdown_report", "pass_hat_k", "run_suite"]

AGENTS = ("scripted", "openai", "http", "careless")


def pass_hat_k(successes: Sequence[int], trials: int, k: int) -> float:
    """τ²-bench's pass^k: the mean over tasks of C(c, k) / C(n, k) — the chance that k
    trials of a task, drawn from its n, all succeed."""
    if not successes or not 1 <= k <= trials:
        raise ValueError("k must be between 1 and the number of trials")
    return sum(math.comb(c, k) / math.comb(trials, k) for c in successes) / len(successes)


def _episode_job(args: tuple[Task, int, AgentSpec, int, AgentSpec]) -> dict[str, Any]:
    return run_episode(*args)


def _crashed(job: tuple[Task, int, AgentSpec, int, AgentSpec], why: str) -> dict[str, Any]:
    """The result of an episode that could not be played to the end."""
    task, trial, _, seed, _ = job
    result = blank_result(task, trial, seed)
    result.update(error=why, failed=[f"episode error: {why}"], wall_s=0.0)
    return result


_STARTED: Any = None
"""In a worker process: the queue on which it says which job it starts."""


def _init_worker(started: Any) -> None:
    global _STARTED
    _STARTED = started


def _worker_job(args: tuple[int, bytes]) -> dict[str, Any]:
    index, job = args
    _STARTED.put(index)  # before unpickling the job: whatever kills the worker, it started
    return _episode_job(pickle.loads(job))


def _run_pool(
    jobs: Sequence[tuple[Task, int, AgentSpec, int, AgentSpec]],
    workers: int,
    done: Callable[[dict[str, Any]], None],
) -> int:
    """Run ``jobs`` in ``workers`` processes, handing each result to ``done``. When a
    worker process dies (killed, out of memory, a crash in native code) the whole pool
    breaks, taking every episode under way with it, and which of them killed it is not
    known: those are played again, one at a time, in a fresh pool, and an episode fails
    with that reason only when its worker dies while it runs alone. The episodes not yet
    started are played too: one death costs only the episode that caused it."""
    context = multiprocessing.get_context("spawn")
    pending = dict(enumerate(jobs))
    suspects: set[int] = set()  # under way when a pool broke: played alone next
    deaths = 0
    while pending:
        started_queue = context.SimpleQueue()
        finished: set[int] = set()
        broken = False
        alone = bool(suspects & pending.keys())
        count = 1 if alone else max(1, min(workers, len(pending)))  # no idle processes
        order = sorted(pending, key=lambda i: (i not in suspects, i))  # suspects first
        with concurrent.futures.ProcessPoolExecutor(
            count, mp_context=context, initializer=_init_worker, initargs=(started_queue,)
        ) as pool:
            futures = {pool.submit(_worker_job, (i, pickle.dumps(pending[i]))): i for i in order}
            for future in concurrent.futures.as_completed(futures):
                i = futures[future]
                try:
                    result = future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    broken = True
                    continue
                except Exception as exc:  # e.g. a result that cannot be sent back
                    result = _crashed(pending[i], f"episode crashed in its worker: {exc!r}")
                finished.add(i)
                done(result)
        started: set[int] = set()
        while not started_queue.empty():
            started.add(started_queue.get())
        deaths += broken
        under_way = (started - finished) if broken else set()
        if count == 1:
            lost = under_way  # it ran alone: it is the one that killed its worker
        else:
            lost = set()
            suspects |= under_way  # one of them did: each is played again, alone
        if broken and not under_way and not finished:
            lost = set(pending)  # nothing moves: give up on the rest rather than loop
        for i in sorted(lost):
            done(_crashed(pending[i], "the episode's worker process died (killed, out of memory?)"))
        suspects -= finished | lost
        pending = {i: job for i, job in pending.items() if i not in finished | lost}
    return deaths


def run_suite(
    tasks: Sequence[Task],
    agent: AgentSpec,
    *,
    trials: int = 1,
    parallel: int = 1,
    seed: int = 0,
    driver: AgentSpec | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Every task × ``trials`` episodes (``parallel`` worker processes; 1: in this
    process). The summary: ``tasks``, ``trials``, ``pass_hat_k``, ``families``,
    ``results``, and ``worker_deaths`` (worker processes that died; their episodes were
    played again, see :func:`_run_pool`)."""
    driver = driver or DRIVER_SCRIPTED
    jobs = [(task, trial, agent, seed, driver) for task in tasks for trial in range(trials)]
    results: list[dict[str, Any]] = []
    deaths = 0
    started = time.perf_counter()
    if progress:
        progress(0, len(jobs))
    if parallel <= 1:
        for job in jobs:
            results.append(_episode_job(job))
            if progress:
                progress(len(results), len(jobs))
    else:

        def done(result: dict[str, Any]) -> None:
            results.append(result)
            if progress:
                progress(len(results), len(jobs))

        deaths = _run_pool(jobs, parallel, done)
    results.sort(key=lambda r: ([t.id for t in tasks].index(r["task"]), r["trial"]))
    summary = summarise(tasks, results, trials, agent, seed, time.perf_counter() - started)
    summary["worker_deaths"] = deaths
    return summary


def summarise(
    tasks: Sequence[Task],
    results: list[dict[str, Any]],
    trials: int,
    agent: AgentSpec,
    seed: int,
    wall_s: float,
) -> dict[str, Any]:
    """The run's JSON document."""
    successes = {t.id: 0 for t in tasks}
    for r in results:
        successes[r["task"]] += int(r["passed"])
    hat = {
        str(k): round(pass_hat_k(list(successes.values()), trials, k), 4)
        for k in range(1, trials + 1)
    }
    families: dict[str, dict[str, Any]] = {}
    for t in tasks:
        fam = families.setdefault(
            t.family, {"tasks": 0, "successes": [], "episodes": 0, "passed": 0}
        )
        fam["tasks"] += 1
        fam["successes"].append(successes[t.id])
    for r in results:
        fam = families[r["family"]]
        fam["episodes"] += 1
        fam["passed"] += int(r["passed"])
    table = {
        name: {
            "tasks": f["tasks"],
            "episodes": f["episodes"],
            "pass_hat_1": round(pass_hat_k(f["successes"], trials, 1), 4),
            f"pass_hat_{trials}": round(pass_hat_k(f["successes"], trials, trials), 4),
        }
        for name, f in sorted(families.items())
    }
    return {
        "tasks": len(tasks),
        "trials": trials,
        "pass_hat_k": hat,
        "agent": agent.kind,
        "seed": seed,
        "episodes": len(results),
        "errors": sum(1 for r in results if r["error"]),
        "wall_s": round(wall_s, 1),
        "families": table,
        "results": [{k: v for k, v in r.items() if k != "snapshot"} for r in results],
    }


def markdown_report(summary: dict[str, Any]) -> str:
    """The run as Markdown: pass^k, the family table, then every episode with its failed
    assertions, tool calls and transcript."""
    lines = [
        f"# Evaluation: agent `{summary['agent']}`",
        "",
        f"{summary['tasks']} tasks × {summary['trials']} trials, seed {summary['seed']}, "
        f"{summary['episodes']} episodes ({summary['errors']} errors), {summary['wall_s']} s.",
        "",
        "| k | pass^k |",
        "|---|---|",
        *(f"| {k} | {v:.3f} |" for k, v in summary["pass_hat_k"].items()),
        "",
        "## Families",
        "",
        "| family | tasks | pass^1 | pass^" + str(summary["trials"]) + " |",
        "|---|---|---|---|",
    ]
    k = summary["trials"]
    for name, f in summary["families"].items():
        lines.append(
            f"| {name} | {f['tasks']} | {f['pass_hat_1']:.3f} | {f[f'pass_hat_{k}']:.3f} |"
        )
    lines += ["", "## Episodes", ""]
    for r in summary["results"]:
        mark = "PASS" if r["passed"] else "FAIL"
        lines += [
            f"### {r['task']} — trial {r['trial']}: {mark} (reward {r['reward']:g})",
            "",
            f"Turns {r['turns']}, ended by {r['stop']}, agent spoke {r['agent_words']} words "
            f"({r['agent_speech_s']} s at 150 wpm).",
            "",
        ]
        if r["failed"]:
            lines += ["Failed:", "", *(f"- {' '.join(m.split())}" for m in r["failed"]), ""]
        calls = ", ".join(f"`{c['tool']}`→{c['status']}" for c in r["tool_calls"]) or "none"
        lines += [f"Tool calls: {calls}", "", "Transcript:", ""]
        for t in r["transcript"]:
            # every line of a multi-line answer stays inside the quote
            text = "  \n> ".join(t["text"].splitlines()) or t["text"]
            lines.append(f"> **{t['who']}**: {text}  ")
        lines.append("")
    return "\n".join(lines)


class ProgressBar:
    """A one-line progress bar on ``stream`` (redrawn on a terminal, a line per tenth
    otherwise)."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream, self.started, self.shown = stream, time.perf_counter(), -1

    def __call__(self, done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        elapsed = time.perf_counter() - self.started
        bar = "#" * filled + "." * (width - filled)
        line = f"[{bar}] {done}/{total} episodes, {elapsed:.0f} s"
        if self.stream.isatty():
            self.stream.write("\r" + line + ("\n" if done == total else ""))
        else:
            tenth = 10 * done // max(total, 1)
            if tenth == self.shown:
                return
            self.shown = tenth
            self.stream.write(line + "\n")
        self.stream.flush()


def _http_url(url: str) -> bool:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


def _picked(task: Task, pattern: str) -> bool:
    return fnmatch.fnmatchcase(task.id, pattern) or task.family == pattern


def with_ocpp_version(task: Task, version: str) -> Task:
    """``task`` with every charger of its world speaking ``version``."""
    state = task.initial_state
    chargers = tuple(dataclasses.replace(c, ocpp_version=version) for c in state.chargers)
    return dataclasses.replace(task, initial_state=dataclasses.replace(state, chargers=chargers))


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate an agent on a task suite (pass^k over K trials per task)."""
    if "--log-level" not in getattr(args, "argv", []) and not os.environ.get("LOG_LEVEL"):
        logging.getLogger().setLevel(logging.WARNING)  # the episodes' servers are chatty
    try:
        tasks = load_tasks(args.tasks)
    except TaskError as exc:
        print(f"v4e eval: {exc}", file=sys.stderr)
        return 2
    if args.only:
        for pattern in args.only:  # a typo in one of several must not pass unnoticed
            if not any(_picked(t, pattern) for t in tasks):
                print(f"v4e eval: --only {pattern!r} matches no task", file=sys.stderr)
                return 2
        tasks = [t for t in tasks if any(_picked(t, p) for p in args.only)]
    if args.ocpp is not None:
        tasks = [with_ocpp_version(t, args.ocpp) for t in tasks]
    if args.min_pass is not None and not 0.0 <= args.min_pass <= 1.0:
        print("v4e eval: --min-pass must be between 0 and 1 (pass^1)", file=sys.stderr)
        return 2
    for option, out in (("--json", args.json), ("--report", args.report)):
        # checked now, not after a run of minutes
        if out and not Path(out).resolve().parent.is_dir():
            print(f"v4e eval: {option}: no directory {Path(out).parent}", file=sys.stderr)
            return 2
        if out and Path(out).is_dir():
            print(f"v4e eval: {option}: {out} is a directory", file=sys.stderr)
            return 2
    if not args.timeout > 0:
        print("v4e eval: --timeout must be more than 0 seconds", file=sys.stderr)
        return 2
    if args.trials < 1 or args.parallel < 1:
        print("v4e eval: --trials and --parallel must be at least 1", file=sys.stderr)
        return 2
    for option, url in (
        ("--base-url", args.base_url),
        ("--agent-url", args.agent_url),
        ("--driver-base-url", args.driver_base_url),
    ):
        if url is not None and not _http_url(url):
            print(f"v4e eval: {option}: not an http(s) URL: {url!r}", file=sys.stderr)
            return 2
    if args.agent == "openai" and not (args.base_url and args.model):
        print("v4e eval: --agent openai needs --base-url and --model", file=sys.stderr)
        return 2
    if args.agent == "http" and not args.agent_url:
        print("v4e eval: --agent http needs --agent-url", file=sys.stderr)
        return 2
    agent = AgentSpec(
        kind=args.agent,
        base_url=args.base_url,
        model=args.model,
        api_key_env=args.api_key_env,
        agent_url=args.agent_url,
        timeout=args.timeout,
    )
    driver = AgentSpec(
        kind=args.driver,
        base_url=args.driver_base_url or args.base_url,
        model=args.driver_model or args.model,
        api_key_env=args.api_key_env,
        timeout=args.timeout,
    )
    if driver.kind == "openai" and not (driver.base_url and driver.model):
        print(
            "v4e eval: --driver openai needs --driver-base-url/--base-url and a model",
            file=sys.stderr,
        )
        return 2
    summary = run_suite(
        tasks,
        agent,
        trials=args.trials,
        parallel=args.parallel,
        seed=args.seed,
        driver=driver,
        progress=ProgressBar(),
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if args.report:
        Path(args.report).write_text(markdown_report(summary) + "\n", encoding="utf-8")
    print(
        f"{summary['tasks']} tasks × {summary['trials']} trials: "
        + ", ".join(f"pass^{k} {v:.3f}" for k, v in summary["pass_hat_k"].items())
    )
    for name, f in summary["families"].items():
        print(f"  {name:<28} {f['tasks']:>3} tasks  pass^1 {f['pass_hat_1']:.3f}")
    failing = [r for r in summary["results"] if not r["passed"]]
    for r in failing[:20]:
        why = " ".join("; ".join(r["failed"]).split())
        print(f"  FAIL {r['task']} #{r['trial']}: {why[:300]}")
    if len(failing) > 20:
        print(
            f"  … and {len(failing) - 20} more failing episodes (--json or --report lists them all)"
        )
    if args.min_pass is not None and summary["pass_hat_k"]["1"] < args.min_pass:
        print(
            f"pass^1 {summary['pass_hat_k']['1']:.3f} is below --min-pass {args.min_pass}",
            file=sys.stderr,
        )
        return 1
    return 0


def add_eval_parser(sub: Any) -> None:
    """``v4e eval``."""
    p = sub.add_parser("eval", help=cmd_eval.__doc__, description=cmd_eval.__doc__)
    p.add_argument(
        "--tasks", default=None, help="a task file or directory (default: the built-in suite)"
    )
    p.add_argument(
        "--only",
        action="append",
        help="only this task id (a glob: 'stuck_connector/*'), or this family; repeatable",
    )
    p.add_argument("--agent", choices=AGENTS, default="scripted", help="the agent under test")
    p.add_argument("--trials", type=int, default=1, help="trials per task (K of pass^k)")
    p.add_argument(
        "--ocpp",
        choices=("1.6", "2.0.1"),
        default=None,
        help="every charger of every task speaks this OCPP version (default: as the task says)",
    )
    p.add_argument("--parallel", type=int, default=1, help="episodes at a time (worker processes)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the driver's choices and the worlds"
    )
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--report", help="write a Markdown report with transcripts here")
    p.add_argument("--base-url", help="OpenAI-compatible API base URL (…/v1) for --agent openai")
    p.add_argument("--model", help="model name for --agent openai")
    p.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key"
    )
    p.add_argument("--agent-url", help="your agent service's URL for --agent http")
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for a model or agent answer"
    )
    p.add_argument(
        "--driver", choices=("scripted", "openai"), default="scripted", help="the driver simulator"
    )
    p.add_argument(
        "--driver-base-url", help="API base URL for --driver openai (default --base-url)"
    )
    p.add_argument("--driver-model", help="model for --driver openai (default --model)")
    p.add_argument("--min-pass", type=float, default=None, help="exit 1 when pass^1 is below this")
    p.set_defaults(func=cmd_eval)
