"""The console table and docs/BENCHMARKS.md: every figure with its target, and the context a
figure needs to be read (command, date, machine, versions, settings, disturbance)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.harness import REPO
from bench.results import Result

DISTURBED_CORES = 0.3  # CPU used by processes other than ours, averaged over a phase

# Settings that shape the figures, reported with their effective defaults.
WORKER_DEFAULTS = (
    "store",
    "topic_partitions",
    "engine_batch_max",
    "timer_interval_s",
    "timer_batch",
    "dispatch_concurrency",
    "dispatch_batch_max",
    "broker_session_timeout_s",
    "log_level",
    "metrics_enabled",
)
HIDDEN_ENV = (
    "KAFKA_BOOTSTRAP",
    "DATA_DIR",
    "OUTBOX_PATH",
    "PUBLIC_BASE_URL",
    "WEB_PORT",
    "TOKEN",
    "ACCOUNT_SID",
    "TWILIO_BASE_URL",
)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, str]:
    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    return {
        "nproc": str(cores),
        "RAM": f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "?",
        "CPU": cpu.group(1).strip() if cpu else platform.processor() or "?",
        "kernel": platform.release(),
    }


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _java() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    first = (out.stderr or out.stdout).strip().splitlines()
    return first[0] if first else "?"


def versions() -> dict[str, str]:
    pom = _read(str(REPO / "scripts" / "kafka" / "pom.xml"))
    kafka = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    return {
        "Python": platform.python_version(),
        "faust-streaming": _version("faust-streaming"),
        "aiokafka": _version("aiokafka"),
        "pydantic": _version("pydantic"),
        "rocksdict": _version("rocksdict"),
        "twilio": _version("twilio"),
        "Kafka (scripts/kafka/pom.xml)": kafka.group(1) if kafka else "?",
        "Java": _java(),
    }


def code_version() -> str:
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        except OSError:
            return ""
        return out.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = [line for line in git("status", "--porcelain").splitlines() if line.strip()]
    return f"{head}" + (f" + {len(dirty)} uncommitted paths in the work tree" if dirty else "")


def worker_defaults() -> dict[str, str]:
    from config.settings import Settings

    fields = Settings.model_fields
    return {k: repr(fields[k].default) for k in WORKER_DEFAULTS if k in fields}


def env_summary(env: dict[str, str], scratch: str | None = None) -> str:
    """The worker's MISSING_ALERTS_* settings, minus addresses, paths and secrets."""
    shown = [
        f"{k}={v.replace(scratch, '<scratch>') if scratch else v}"
        for k, v in sorted(env.items())
        if k.startswith("MISSING_ALERTS_") and not any(h in k for h in HIDDEN_ENV)
    ]
    return ", ".join(f"`{s}`" for s in shown)


def disturbed(res: Result) -> list[str]:
    return [
        f"{phase}: {c['others_cores']:.2f} cores"
        for phase, c in res.cpu.items()
        if c.get("others_cores", 0.0) > DISTURBED_CORES
    ]


# --------------------------------------------------------------------------- console


def table(results: list[Result]) -> str:
    rows = [("scenario", "figure", "value", "unit", "target", "status")]
    for res in results:
        if res.error:
            rows.append((res.scenario, "FAILED", res.error.splitlines()[0][:60], "", "", ""))
        for f in res.figures:
            rows.append((res.scenario, f.name, f.shown(), f.unit, f.target, f.status))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    out = []
    for n, row in enumerate(rows):
        cells = [c.rjust(widths[i]) if i == 2 else c.ljust(widths[i]) for i, c in enumerate(row)]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


# --------------------------------------------------------------------------- markdown


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(results: list[Result], run: dict[str, Any]) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{run['command']}` on {run['date']}; do not edit by hand, run it again. "
        f"The full run took **{run['wall']}** (broker start to report). Every speed figure is "
        "from this one run on this machine; the throughput target is also read against a "
        "baseline measured in the same run, on the same broker.",
        "",
        "## Summary",
        "",
        "| scenario | figure | value | target | status |",
        "|---|---|---:|---|---|",
    ]
    for res in results:
        if res.error:
            lines.append(f"| {res.scenario} | **failed**: {_md(res.error.splitlines()[0])} | | | |")
        for f in res.figures:
            value = f"{f.shown()} {f.unit}".strip()
            status = f"**{f.status}**" if f.status == "not met" else f.status
            lines.append(
                f"| {res.scenario} | {_md(f.name)} | {value} | {_md(f.target)} | {status} |"
            )
    lines += ["", "## Run", ""]
    lines.append(f"- Command: `{run['command']}` (arguments: `{run['argv'] or 'none'}`)")
    lines.append(f"- Date: {run['date']}; wall time {run['wall']}")
    lines.append("- Machine: " + ", ".join(f"{k} {v}" for k, v in run["machine"].items()))
    lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in run["versions"].items()))
    lines.append(f"- Code: {run['code']}")
    lines.append(f"- Broker: {run['broker']}")
    lines.append(
        "- Worker settings not named below are the defaults: "
        + ", ".join(f"`{k}={v}`" for k, v in run["defaults"].items())
    )
    lines.append(
        f"- Load average at start / end: {run['load_start']} / {run['load_end']}. Per phase, "
        "CPU used by processes other than this run's (bench, workers, broker) is in each "
        f"scenario's notes; above {DISTURBED_CORES} cores on average it is flagged as disturbed."
    )
    flagged = [(r.scenario, d) for r in results for d in disturbed(r)]
    if flagged:
        lines.append(
            "- **Possibly disturbed** (other work on the machine during the phase): "
            + "; ".join(f"{s} {d}" for s, d in flagged)
        )
    else:
        lines.append("- No phase saw other processes use more than that: the run looks clean.")
    for n, res in enumerate(results, start=1):
        lines += ["", f"## {n}. {res.scenario}: {res.title}", ""]
        if res.error:
            lines += ["**Failed:**", "", "```", res.error[-3000:], "```", ""]
        if res.settings:
            lines += ["| setting | value |", "|---|---|"]
            lines += [f"| {_md(k)} | {_md(str(v))} |" for k, v in res.settings.items()]
            lines.append("")
        if res.figures:
            lines += ["| figure | value | target | status | note |", "|---|---:|---|---|---|"]
            for f in res.figures:
                value = f"{f.shown()} {f.unit}".strip()
                lines.append(
                    f"| {_md(f.name)} | {value} | {_md(f.target)} | {f.status} | {_md(f.note)} |"
                )
            lines.append("")
        for note in res.notes:
            lines.append(f"- {note}")
        if res.cpu:
            lines.append(
                "- CPU per phase (cores, averaged; machine / this run / others): "
                + "; ".join(
                    f"{phase} {c['machine_cores']:.2f} / {c['ours_cores']:.2f} / "
                    f"{c['others_cores']:.2f}"
                    for phase, c in res.cpu.items()
                )
            )
        lines.append(f"- Scenario time: {res.seconds:.0f} s.")
        for heading, body in res.sections:
            lines += ["", f"### {heading}", "", body]
    lines += [
        "",
        "## How to run",
        "",
        "```sh",
        "make bench                     # full run; rewrites this file (under 15 min here)",
        "scripts/bench --quick          # smoke run with small sizes, about 2-3 minutes",
        "scripts/bench --only recovery  # one scenario (comma-separate several)",
        "scripts/bench --help           # every size and option",
        "```",
        "",
        "`scripts/bench` starts its own broker (`KAFKA_LOCAL_DIR=${TMPDIR:-/tmp}/"
        "missing-alerts-bench-kafka scripts/kafka-local clean/start`, stopped on exit) unless "
        "`MISSING_ALERTS_BENCH_KAFKA=host:port` names one. `python -m bench` alone uses "
        "`MISSING_ALERTS_BENCH_KAFKA`. Runs with `--quick` or `--only` print the table but write "
        "this file only when given `--report PATH`. `--profile` (default on when py-spy is "
        "installed) adds the engine profile; py-spy is not a project dependency.",
        "",
    ]
    return "\n".join(lines)


def command_line() -> str:
    invoked = os.environ.get("MISSING_ALERTS_BENCH_INVOKED")
    if invoked:
        return invoked
    return "python -m bench " + " ".join(sys.argv[1:])
