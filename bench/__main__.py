"""``python -m bench``: run the benchmark scenarios, print a table, write docs/BENCHMARKS.md.

Usually started by ``make bench`` / ``scripts/bench``, which bring up a broker of their own and
pass it in ``MISSING_ALERTS_BENCH_KAFKA``. Scenarios run in order on that one broker, each with
its own topics; escalation_lateness, memory and recovery share one worker holding the open
episodes (see bench/population.py).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    alert_latency,
    api_throughput,
    engine_throughput,
    episode_list,
    escalation_lateness,
    memory,
    recovery,
)
from bench import report as rep
from bench.harness import REPO, Bench, kill_all, log
from bench.population import Population
from bench.profile import Profiler
from bench.results import Result

Scenario = Callable[[Bench, Any], Awaitable[Result]]
SCENARIOS: dict[str, Scenario] = {
    engine_throughput.NAME: engine_throughput.run,
    escalation_lateness.NAME: escalation_lateness.run,
    memory.NAME: memory.run,
    recovery.NAME: recovery.run,
    alert_latency.NAME: alert_latency.run,
    api_throughput.NAME: api_throughput.run,
    episode_list.NAME: episode_list.run,
}
DOC = REPO / "docs" / "BENCHMARKS.md"

# The last commit before the restructuring of issue #11 (and exactly once, #12): the full run
# compares this code's at_least_once engine with it.
AB_REF = "fb55d5e"

# Full-run sizes fit 15 minutes on a 2-core machine; --quick shrinks them for a smoke run.
QUICK = {
    "api_seconds": 5.0,
    "throughput_events": 20_000,
    "throughput_children": 2_000,
    "batch1_events": 500,
    "ab_ref": "",
    "profile": False,
    "episodes": [2_000, 10_000],
    "lateness_rate": 20.0,
    "lateness_window": 10.0,
    "lateness_lead": 15.0,
    "recovery_children": 20,
    "recovery_due_in": 8.0,
    "recovery_downtime": 3.0,
    "recovery_rebuild": False,
    "latency_absences": 40,
    "latency_interval": 0.1,
    "latency_warmup": 2.0,
    "list_episodes": 2_000,
    "list_seconds": 5.0,
}


def _sizes(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="missing-alerts benchmark: engine throughput vs a plain aiokafka loop, "
        "escalation lateness, memory, recovery, alert latency.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes: a ~2 minute smoke run")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these scenarios (repeat or comma-separate): {', '.join(SCENARIOS)}",
    )
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help=f"write the report here (default: {DOC.relative_to(REPO)} for full runs, "
        "nothing for --quick/--only)",
    )
    p.add_argument("--no-report", action="store_true", help="never write a report file")
    p.add_argument("--keep", action="store_true", help="keep the scratch dir (logs, data)")
    p.add_argument("--bootstrap", default=os.environ.get("MISSING_ALERTS_BENCH_KAFKA"))
    g = p.add_argument_group("engine_throughput")
    g.add_argument("--throughput-events", type=int, default=200_000)
    g.add_argument("--throughput-children", type=int, default=20_000)
    g.add_argument(
        "--engine-runs",
        type=int,
        default=3,
        help="engine runs (median reported) when --no-metrics-off; with metrics-off: 3 on, 2 off",
    )
    g.add_argument(
        "--ab-ref",
        default=AB_REF,
        help="also run the engine of this commit, interleaved, for a same-run comparison "
        "with earlier code ('' to skip)",
    )
    g.add_argument(
        "--batch1-events",
        type=int,
        default=2_000,  # exactly once, a transaction per record: some 40 events/s
        help="backlog of the MISSING_ALERTS_ENGINE_BATCH_MAX=1 run (0: skip it)",
    )
    g.add_argument(
        "--metrics-off",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="interleave engine runs with metrics on and off (on, off, on, off, on) and report "
        "what metrics cost",
    )
    g.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile a separate engine run with py-spy (default: on when py-spy is installed)",
    )
    g.add_argument("--profile-events", type=int, default=40_000)
    g.add_argument(
        "--domain-ceiling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the pure domain alone, without Kafka (about 15 s)",
    )
    g.add_argument("--profile-seconds", type=float, default=20.0)
    g = p.add_argument_group("escalation_lateness / memory / recovery (one shared worker)")
    g.add_argument(
        "--episodes",
        type=_sizes,
        default=[10_000, 100_000],
        help="open-episode counts, comma-separated (default 10000,100000)",
    )
    g.add_argument("--lateness-rate", type=float, default=50.0, help="steps due per second")
    g.add_argument("--lateness-window", type=float, default=60.0, help="seconds")
    g.add_argument(
        "--lateness-lead",
        type=float,
        default=30.0,
        help="seconds between producing a due wave and its window (apply + first steps)",
    )
    g.add_argument("--recovery-children", type=int, default=50)
    g.add_argument(
        "--recovery-due-in",
        type=float,
        default=10.0,
        help="seconds from producing the due wave to its due time",
    )
    g.add_argument(
        "--recovery-downtime", type=float, default=3.0, help="seconds from SIGKILL to respawn"
    )
    g.add_argument(
        "--recovery-rebuild",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also restart with the data dir removed",
    )
    g = p.add_argument_group("alert_latency")
    g.add_argument("--latency-absences", type=int, default=300)
    g.add_argument("--latency-interval", type=float, default=0.2, help="seconds between absences")
    g.add_argument("--latency-checkins", type=float, default=200.0, help="background per second")
    g.add_argument("--latency-warmup", type=float, default=5.0)
    g = p.add_argument_group("api_throughput")
    g.add_argument("--api-clients", type=int, default=50)
    g.add_argument("--api-seconds", type=float, default=20.0)
    g.add_argument("--api-warmup", type=float, default=3.0)
    g.add_argument(
        "--api-rate", type=float, default=500.0, help="total requests/s (0: back to back)"
    )
    g = p.add_argument_group("episode_list")
    g.add_argument("--list-episodes", type=int, default=10_000, help="open episodes listed")
    g.add_argument("--list-clients", type=int, default=10, help="clients per URL")
    g.add_argument("--list-rate", type=float, default=50.0, help="requests/s per URL in total")
    g.add_argument("--list-seconds", type=float, default=20.0)
    g.add_argument("--list-warmup", type=float, default=3.0)
    args = p.parse_args(argv)
    if args.quick:
        given = {a.lstrip("-").split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}
        for key, value in QUICK.items():
            if key not in given:
                setattr(args, key, value)
    only = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in only if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario {unknown}; choose from {', '.join(SCENARIOS)}")
    args.only = only
    if args.profile is None:
        args.profile = Profiler.executable() is not None
    if not args.bootstrap:
        p.error("no broker: set MISSING_ALERTS_BENCH_KAFKA=host:port or run scripts/bench")
    return args


def _broker_pid() -> int | None:
    state = os.environ.get("MISSING_ALERTS_BENCH_KAFKA_DIR")
    if not state:
        return None
    try:
        return int((Path(state) / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _wall(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


async def run_all(args: argparse.Namespace, bench: Bench) -> list[Result]:
    names = args.only or list(SCENARIOS)
    results: list[Result] = []
    try:
        for name in SCENARIOS:
            if name not in names:
                continue
            log(f"=== {name}")
            t0 = time.monotonic()
            try:
                res = await SCENARIOS[name](bench, args)
            except (KeyboardInterrupt, asyncio.CancelledError):
                raise
            except Exception as exc:
                res = Result(name, name, error=f"{type(exc).__name__}: {exc}")
                traceback.print_exc()
            res.seconds = time.monotonic() - t0
            log(f"=== {name} done in {res.seconds:.0f} s")
            results.append(res)
    finally:
        pop = bench.shared.get("population")
        if isinstance(pop, Population):
            pop.stop()
    return results


def _on_sigterm(_signum: int, _frame: Any) -> None:
    """SIGTERM ends the run like Ctrl-C: every started process is killed on the way out."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started_env = os.environ.get("MISSING_ALERTS_BENCH_STARTED")
    started = float(started_env) if started_env else time.time()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = _loadavg()
    base = Path(os.environ.get("TMPDIR", tempfile.gettempdir()))
    root = Path(tempfile.mkdtemp(prefix="missing-alerts-bench-", dir=base))
    bench = Bench(bootstrap=args.bootstrap, root=root, broker_pid=_broker_pid())
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # aiokafka retries NotLeaderForPartition on brand-new topics by itself; keep it quiet.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    try:
        results = asyncio.run(run_all(args, bench))
    except KeyboardInterrupt:
        log("interrupted: stopping every process this run started")
        kill_all()
        return 130
    finally:
        kill_all()
    failed = any(r.error for r in results)
    print()
    print(rep.table(results))
    wall = time.time() - started
    print(f"\nwall time {_wall(wall)}; scratch dir {root}{'' if args.keep else ' (removed)'}")
    full = not args.quick and not args.only
    target = None if args.no_report else (args.report or (DOC if full else None))
    if target is not None:
        run_info = {
            "command": rep.command_line(),
            "argv": " ".join(sys.argv[1:] if argv is None else argv),
            "date": date,
            "wall": _wall(wall),
            "machine": rep.machine(),
            "versions": rep.versions(),
            "code": rep.code_version(),
            "broker": f"one single-node broker for the whole run ({args.bootstrap}"
            + (", started by scripts/bench)" if _broker_pid() else ")"),
            "defaults": rep.worker_defaults(),
            "load_start": load_start,
            "load_end": _loadavg(),
        }
        target.write_text(rep.markdown(results, run_info))
        print(f"report written to {target}")
    if not args.keep and not failed:
        shutil.rmtree(root, ignore_errors=True)
    elif failed:
        print(f"a scenario failed: logs kept in {root}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
