"""Scenario 1: events/s through the episode engine on a pre-produced backlog, against a plain
aiokafka consume -> json.loads -> produce loop on the same broker, records and partitions.

How it is timed (the same way for both, from Kafka record timestamps, i.e. the producing
process's clock on this machine):

- start = the first output record (smallest CreateTime over the pipeline's output topics);
- end = for the engine, the ``return_held`` audit record of a sentinel event
  produced last on every partition (one return naming no episode, for a child with none);
  records of a partition are processed in order, so when all sentinel records exist, the whole
  backlog has been applied and its effects acknowledged. For the baseline, the last output
  record. This is exact to the millisecond, unlike polling the group's committed offsets
  (reported separately as a cross-check);
- events/s = (backlog - batch bound) / (end - start): the first batch was processed before
  the first output existed, so it is not counted (conservative by at most 0.25 %).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import domain_ceiling, profile
from bench.harness import (
    PY,
    REPO,
    Bench,
    CpuWatch,
    TopicTail,
    Worker,
    changelog_topic,
    create_topics,
    end_offsets,
    first_timestamp_ms,
    keys_per_partition,
    log,
    proc_cpu_s,
    produce_fast,
    read_topic,
    register_pid,
    topic,
    unregister_pid,
    wait_caught_up,
)
from bench.report import env_summary
from bench.results import Figure, Result, at_least, at_most
from bench.workload import encode, mixed_backlog, sentinels, validate_sample

NAME = "engine_throughput"
SENTINEL_PREFIX = "zz-sentinel-"
TARGET_RATE = 10_000.0
TARGET_RATIO = 0.3
DEFAULT_BATCH = 1000


async def _produce_backlog(
    env: dict[str, str], events: int, children: int
) -> tuple[int, Counter[str], float]:
    """Backlog + one sentinel per partition (last). Returns (records, mix, seconds)."""
    backlog, mix = mixed_backlog(events, children)
    validate_sample(backlog)
    partitions = int(env["MISSING_ALERTS_TOPIC_PARTITIONS"])
    backlog += sentinels(keys_per_partition(partitions, SENTINEL_PREFIX))
    await create_topics(env)
    seconds = await produce_fast(
        env["MISSING_ALERTS_KAFKA_BOOTSTRAP"], topic(env, "events"), (encode(e) for e in backlog)
    )
    return len(backlog), Counter(mix.counts), seconds


async def _count(bootstrap: str, topic_name: str) -> int:
    try:
        return sum((await end_offsets(bootstrap, [topic_name])).values())
    except Exception:
        return 0


async def prepare(
    bench: Bench, name: str, events: int, children: int, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """A fresh pipeline (own topics and group) with the backlog produced on its events topic."""
    env = bench.env(name, **(extra_env or {}))
    records, mix, produce_s = await _produce_backlog(env, events, children)
    log(f"{name}: produced {records:,} records in {produce_s:.1f}s")
    return {"name": name, "env": env, "records": records, "mix": dict(mix)}


async def run_engine(
    bench: Bench,
    prepared: dict[str, Any],
    *,
    within: float,
    profiler: profile.Profiler | None = None,
    repo: Path = REPO,
) -> dict[str, Any]:
    """One worker (of the code in ``repo``) over a prepared backlog; returns the measurement."""
    name, env, records = prepared["name"], prepared["env"], prepared["records"]
    bootstrap = env["MISSING_ALERTS_KAFKA_BOOTSTRAP"]
    batch_max = int(env.get("MISSING_ALERTS_ENGINE_BATCH_MAX", DEFAULT_BATCH))
    partitions = int(env["MISSING_ALERTS_TOPIC_PARTITIONS"])
    sentinel_keys = {k.encode() for k in keys_per_partition(partitions, SENTINEL_PREFIX)}
    tail = TopicTail(bootstrap, [topic(env, "episode-events")], lambda k, _v: k in sentinel_keys)
    await tail.start()
    worker = Worker(env, bench.root / name / "worker.log", repo=repo)
    worker.start()
    try:
        # Measured from spawn: the engine consumes as soon as its own group assigns it
        # partitions, usually well before Faust logs "Worker ready" (which comes later, as the
        # rest of the worker starts beside the engine's work).
        watch = CpuWatch([worker.pid, *bench.our_pids()])
        cpu0 = worker.cpu_s()
        if profiler is not None:
            profiler.attach(worker.pid)
        done = await tail.wait_for(len(sentinel_keys), within, worker)
        cpu1 = worker.cpu_s()
        cpu = watch.result()
        ready_s = await worker.wait_ready()
        if profiler is not None:
            profiler.wait()
        if not done:
            raise TimeoutError(f"{name}: backlog not processed within {within:.0f}s")
        end_ms = max(r.timestamp_ms for r in tail.records)
        seen_end = time.monotonic()
        outputs = [topic(env, "episode-events"), topic(env, "alerts"), changelog_topic(env)]
        starts = [await first_timestamp_ms(bootstrap, t) for t in outputs]
        start_ms = min(s for s in starts if s is not None)
        # Cross-check: the consumer group's committed offsets reach the end of the backlog.
        commit_lag: float | None
        try:
            caught = await wait_caught_up(
                bootstrap,
                f"{env['MISSING_ALERTS_APP_ID']}-engine",
                [topic(env, "events")],
                within=30,
                poll=0.2,
                worker=worker,
            )
            commit_lag = caught - seen_end
        except TimeoutError:
            commit_lag = None
        dead = await _count(bootstrap, topic(env, "dead-letters"))
        alerts = await _count(bootstrap, topic(env, "alerts"))
        audit = await _count(bootstrap, topic(env, "episode-events"))
        rss = worker.rss_mb()
    finally:
        await tail.stop()
        worker.stop()
    seconds = (end_ms - start_ms) / 1000
    counted = records - min(batch_max, records)
    return {
        **prepared,
        "counted": counted,
        "seconds": seconds,
        "rate": counted / seconds if seconds > 0 else None,
        "ready_s": ready_s,
        "cpu_per_event_us": (cpu1 - cpu0) / records * 1e6,
        "worker_cores": (cpu1 - cpu0) / max(1e-6, cpu["elapsed_s"]),
        "cpu": cpu,
        "commit_lag_s": commit_lag,
        "dead_letters": dead,
        "alerts": alerts,
        "audit_records": audit,
        "rss_mb": rss,
        "batch_max": batch_max,
    }


async def run_baseline(bench: Bench, env: dict[str, str], records: int, tag: str) -> dict[str, Any]:
    """The plain loop as its own process over the engine run's events topic."""
    bootstrap = env["MISSING_ALERTS_KAFKA_BOOTSTRAP"]
    sink = topic(env, f"baseline-{tag}")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = int(env["MISSING_ALERTS_TOPIC_PARTITIONS"])
        await admin.create_topics([NewTopic(sink, partitions, 1)])
    finally:
        await admin.close()
    group = f"{env['MISSING_ALERTS_APP_ID']}-baseline-{tag}"
    cmd = [
        PY,
        "-m",
        "bench.baseline_loop",
        "--bootstrap",
        bootstrap,
        "--source",
        topic(env, "events"),
        "--sink",
        sink,
        "--group",
        group,
        "--expect",
        str(records),
        "--batch",
        str(DEFAULT_BATCH),
    ]
    watch = CpuWatch(bench.our_pids())
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    register_pid(proc.pid)
    watch.add(proc.pid)
    communicate = asyncio.create_task(proc.communicate())
    while not communicate.done():
        watch.sample()  # an exited process keeps its last reading
        await asyncio.wait([communicate], timeout=0.1)
    out, err = communicate.result()
    unregister_pid(proc.pid)
    if proc.returncode != 0:
        raise RuntimeError(f"baseline loop failed: {err.decode()[-2000:]}")
    own = json.loads(out.decode().strip().splitlines()[-1])
    cpu = watch.result()
    outputs = await read_topic(bootstrap, sink)
    stamps = [r.timestamp_ms for r in outputs]
    seconds = (max(stamps) - min(stamps)) / 1000
    counted = records - DEFAULT_BATCH
    return {
        "tag": tag,
        "records": len(outputs),
        "seconds": seconds,
        "rate": counted / seconds if seconds > 0 else None,
        "own_rate": own["records"] / max(1e-6, own["last_ack"] - own["first_send"]),
        "cpu_per_event_us": own.get("cpu_s", 0.0) / max(1, records) * 1e6,
        "cpu": cpu,
    }


PEER_PY = REPO / ".venv-peer" / "bin" / "python"
CHECKPOINT_S = 5.0  # Quix Streams' default commit interval


async def run_peer(
    bench: Bench, env: dict[str, str], records: int, within: float, guarantee: str
) -> dict[str, Any]:
    """The Quix Streams peer (bench/quix_peer.py) over the main run's events topic, timed from
    its outputs' timestamps (their processing time) like the engine: first output to the last
    sentinel's."""
    bootstrap = env["MISSING_ALERTS_KAFKA_BOOTSTRAP"]
    partitions = int(env["MISSING_ALERTS_TOPIC_PARTITIONS"])
    sink = topic(env, f"peer-out-{guarantee}")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(sink, partitions, 1)])
    finally:
        await admin.close()
    sentinel_keys = {k.encode() for k in keys_per_partition(partitions, SENTINEL_PREFIX)}
    tail = TopicTail(bootstrap, [sink], lambda key, _value: key in sentinel_keys)
    await tail.start()
    state_dir = bench.root / f"peer-state-{guarantee}"
    cmd = [
        str(PEER_PY),
        "-m",
        "bench.quix_peer",
        "--bootstrap",
        bootstrap,
        "--source",
        topic(env, "events"),
        "--sink",
        sink,
        "--group",
        f"{env['MISSING_ALERTS_APP_ID']}-peer-{guarantee}",
        "--state-dir",
        str(state_dir),
        "--commit-interval",
        str(CHECKPOINT_S),
        "--guarantee",
        guarantee,
    ]
    log_file = (bench.root / f"peer-{guarantee}.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=REPO,
        stdout=log_file,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    register_pid(proc.pid)
    watch = CpuWatch([proc.pid, *bench.our_pids()])
    cpu0 = proc_cpu_s(proc.pid)
    try:
        done = await tail.wait_for(len(sentinel_keys), within)
        cpu1 = proc_cpu_s(proc.pid)
        cpu = watch.result()
    finally:
        await tail.stop()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
        unregister_pid(proc.pid)
        log_file.close()
    if not done:
        raise TimeoutError(f"peer ({guarantee}): backlog not processed within {within:.0f}s")
    start_ms = await first_timestamp_ms(bootstrap, sink)
    end_ms = max(r.timestamp_ms for r in tail.records)
    seconds = (end_ms - start_ms) / 1000 if start_ms is not None else 0.0
    counted = records - DEFAULT_BATCH
    return {
        "rate": counted / seconds if seconds > 0 else None,
        "seconds": seconds,
        "cpu_per_event_us": (cpu1 - cpu0) / records * 1e6,
        "cpu": cpu,
        "outputs": await _count(bootstrap, sink),
    }


def checkout(bench: Bench, ref: str) -> Path:
    """A detached worktree of ``ref`` in the scratch dir (the same virtualenv runs it)."""
    where = bench.root / f"ab-{ref}"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--force", str(where), ref],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return where


def uncheckout(where: Path) -> None:
    subprocess.run(
        ["git", "worktree", "remove", "--force", str(where)],
        cwd=REPO,
        check=False,
        capture_output=True,
    )


def _fmt_mix(mix: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(mix.items(), key=lambda kv: -kv[1]))


async def run(bench: Bench, opts: Any) -> Result:
    res = Result(NAME, "Engine throughput vs a plain aiokafka loop")
    timeout = max(180.0, opts.throughput_events / 300)
    main_name = "throughput"
    # The backlog is produced once per engine run (fresh topics); the baseline reads the main
    # run's events topic, so it sees the very same records, partitions and broker.
    prepared = await prepare(bench, main_name, opts.throughput_events, opts.throughput_children)
    env = prepared["env"]
    # Baseline passes bracket the engine run in time: their spread shows how steady the
    # machine was while the engine ran.
    log("engine_throughput: baseline loop, pass 1 (before the engine)")
    base_before = await run_baseline(bench, env, prepared["records"], "before")
    # Several engine runs, each on a fresh copy of the backlog. With metrics on and off
    # interleaved (on, off, on, off, on), a drift of the machine's speed hits both sides alike;
    # the figures are medians and every run is listed. "On" is the shipped default.
    # "alo" runs are the at-least-once engine (PROCESSING_GUARANTEE=at_least_once), interleaved
    # the same way, so exactly_once's cost is read between runs of one stretch of time.
    if opts.metrics_off:
        sides = ["on", "off", "alo", "on", "off", "alo", "on"]
    else:
        sides = ["on", "alo"] * max(1, opts.engine_runs // 2) + ["on"] * (opts.engine_runs % 2)
    side_env = {
        "on": {},
        "off": {"MISSING_ALERTS_METRICS_ENABLED": "false"},
        "alo": {"MISSING_ALERTS_PROCESSING_GUARANTEE": "at_least_once"},
    }
    label = {"on": "exactly_once", "off": "metrics off", "alo": "at_least_once"}
    # Same-run A/B with earlier code (--ab-ref): its engine runs after each at_least_once run,
    # from a checkout of that commit, on the same broker and backlog shape.
    ref = checkout(bench, opts.ab_ref) if opts.ab_ref else None
    if ref is not None:
        sides = [s for side in sides for s in ([side, "ref"] if side == "alo" else [side])]
        side_env["ref"] = {}
        label["ref"] = f"code at {opts.ab_ref}"
    runs: list[tuple[str, dict[str, Any]]] = []
    try:
        for i, side in enumerate(sides):
            if i == 0:
                p = prepared
            else:
                p = await prepare(
                    bench,
                    f"{main_name}-{i + 1}-{side}",
                    opts.throughput_events,
                    opts.throughput_children,
                    side_env[side],
                )
            log(f"engine_throughput: engine run {i + 1} of {len(sides)} ({label[side]})")
            repo = ref if side == "ref" and ref is not None else REPO
            runs.append((side, await run_engine(bench, p, within=timeout, repo=repo)))
    finally:
        if ref is not None:
            uncheckout(ref)
    # At the peer's checkpoint interval: several batches per transaction.
    log(f"engine_throughput: engine run with {CHECKPOINT_S:g} s checkpoints (exactly_once)")
    p5 = await prepare(
        bench,
        f"{main_name}-checkpoint",
        opts.throughput_events,
        opts.throughput_children,
        {"MISSING_ALERTS_ENGINE_COMMIT_INTERVAL_S": str(CHECKPOINT_S)},
    )
    checkpointed = await run_engine(bench, p5, within=timeout)
    # The peer under both its guarantees; the engine's 5 s run is compared with the like one.
    peers: dict[str, dict[str, Any]] = {}
    peer_note = ""
    if PEER_PY.exists():
        for guarantee in ("exactly-once", "at-least-once"):
            log(f"engine_throughput: peer, a Quix Streams app, {guarantee}, {CHECKPOINT_S:g} s")
            try:
                peers[guarantee] = await run_peer(
                    bench, env, prepared["records"], timeout, guarantee
                )
            except Exception as exc:  # report, do not lose the run
                peer_note += f"Peer ({guarantee}) failed: {type(exc).__name__}: {exc}. "
    else:
        peer_note = f"Peer skipped: {PEER_PY} is missing (scripts/bench makes it)."
    main = runs[0][1]
    log("engine_throughput: baseline loop, pass 2 (after the engine runs)")
    base_after = await run_baseline(bench, env, prepared["records"], "after")
    bases = [b["rate"] for b in (base_before, base_after) if b["rate"]]
    baseline = sum(bases) / len(bases) if bases else None

    b1: dict[str, Any] | None = None
    if opts.batch1_events > 0:
        log("engine_throughput: engine run with MISSING_ALERTS_ENGINE_BATCH_MAX=1")
        p1 = await prepare(
            bench,
            "throughput-batch1",
            opts.batch1_events,
            max(1, opts.batch1_events // 10),
            {"MISSING_ALERTS_ENGINE_BATCH_MAX": "1"},
        )
        try:  # a transaction per record (exactly once): slow by design, bounded generously
            b1 = await run_engine(bench, p1, within=max(120.0, opts.batch1_events / 10))
        except Exception as exc:  # report it; the main figures stand without it
            res.notes.append(f"Batch-1 run failed: {type(exc).__name__}: {exc}")
    on_runs = [r for side, r in runs if side == "on" and r["rate"]]
    off_runs = [r for side, r in runs if side == "off" and r["rate"]]
    alo_runs = [r for side, r in runs if side == "alo" and r["rate"]]
    rate = statistics.median(r["rate"] for r in on_runs) if on_runs else None
    cpu_per_event = statistics.median(r["cpu_per_event_us"] for r in on_runs) if on_runs else None
    listed = "runs in order: " + ", ".join(
        f"{r['rate']:,.0f} ({label[side]})" for side, r in runs if r["rate"]
    )
    res.add(
        Figure(
            f"engine, exactly_once (default; per worker; median of {len(on_runs)} runs)",
            rate,
            "events/s",
            f">= {TARGET_RATE:,.0f} events/s",
            at_least(rate, TARGET_RATE),
            note=listed,
        )
    )
    res.add(
        Figure(
            "baseline: aiokafka consume -> json.loads -> produce",
            baseline,
            "events/s",
            note="passes before / after the engine: " + " / ".join(f"{b:,.0f}" for b in bases),
        )
    )
    ratio = rate / baseline if rate and baseline else None
    res.add(
        Figure(
            "engine / baseline",
            ratio,
            "ratio",
            f">= {TARGET_RATIO}",
            at_least(ratio, 0.3),
            "{:.3f}",
        )
    )
    if alo_runs and rate:
        alo = statistics.median(r["rate"] for r in alo_runs)
        res.add(Figure(f"engine, at_least_once (median of {len(alo_runs)} runs)", alo, "events/s"))
        eos_cost = 1 - rate / alo
        res.add(
            Figure(
                "exactly_once cost (1 - exactly_once / at_least_once, medians)",
                eos_cost,
                "",
                "<= 10%",
                at_most(eos_cost, 0.10),
                fmt="{:.1%}",
            )
        )
        alo_ratio = alo / baseline if baseline else None
        res.add(Figure("engine at_least_once / baseline", alo_ratio, "ratio", fmt="{:.3f}"))
        ref_runs = [r for side, r in runs if side == "ref" and r["rate"]]
        if ref_runs:
            was = statistics.median(r["rate"] for r in ref_runs)
            res.add(
                Figure(
                    f"engine at {opts.ab_ref} (earlier code, at least once; median of "
                    f"{len(ref_runs)} runs)",
                    was,
                    "events/s",
                    note="each run right after an at_least_once run of this code",
                )
            )
            res.add(
                Figure(
                    f"at_least_once now / at {opts.ab_ref}",
                    alo / was,
                    "ratio",
                    fmt="{:.3f}",
                )
            )
    res.add(
        Figure(
            f"engine, exactly_once, {CHECKPOINT_S:g} s checkpoints",
            checkpointed["rate"],
            "events/s",
            note=f"MISSING_ALERTS_ENGINE_COMMIT_INTERVAL_S={CHECKPOINT_S:g}",
        )
    )
    for guarantee, peer in peers.items():
        res.add(
            Figure(
                f"peer: Quix Streams app, {guarantee}, {CHECKPOINT_S:g} s checkpoints",
                peer["rate"],
                "events/s",
                note=f"same decode/apply/encode per record; {peer['outputs']:,} outputs; "
                f"CPU {peer['cpu_per_event_us']:,.0f} us per event",
            )
        )
        res.cpu[f"peer {guarantee}"] = peer["cpu"]
    like = peers.get("exactly-once")
    if like is not None:
        ahead = (
            checkpointed["rate"] / like["rate"] if checkpointed["rate"] and like["rate"] else None
        )
        res.add(
            Figure(
                f"engine / peer (both exactly once, {CHECKPOINT_S:g} s checkpoints)",
                ahead,
                "ratio",
                "> 1",
                ahead > 1 if ahead is not None else None,
                "{:.2f}",
            )
        )
    if peer_note:
        res.notes.append(peer_note)
    if b1 is not None:
        res.add(Figure("engine, MISSING_ALERTS_ENGINE_BATCH_MAX=1", b1["rate"], "events/s"))
        gain = rate / b1["rate"] if rate and b1["rate"] else None
        res.add(Figure("batching gain (default / batch 1)", gain, "x", fmt="{:.2f}"))
    if on_runs and off_runs and rate:
        off = statistics.median(r["rate"] for r in off_runs)
        res.add(
            Figure(f"engine, metrics disabled (median of {len(off_runs)} runs)", off, "events/s")
        )
        cost = 1 - rate / off
        res.add(
            Figure(
                "metrics cost (1 - on/off, medians)",
                cost,
                "",
                "<= 5%",
                at_most(cost, 0.05),
                fmt="{:.1%}",
            )
        )
    res.add(
        Figure(
            "engine CPU per event (default batching; median)", cpu_per_event, "us", fmt="{:,.0f}"
        )
    )
    res.add(
        Figure(
            "baseline CPU per event", base_before["cpu_per_event_us"] or None, "us", fmt="{:,.0f}"
        )
    )

    res.settings = {
        "backlog": f"{main['records']:,} records over {opts.throughput_children:,} children "
        f"({_fmt_mix(main['mix'])}, + 1 sentinel per partition)",
        "partitions": env["MISSING_ALERTS_TOPIC_PARTITIONS"],
        "store": "rocksdb:// (default)",
        "engine batch": f"MISSING_ALERTS_ENGINE_BATCH_MAX={main['batch_max']} (default)",
        "baseline": f"one process, aiokafka defaults, acks=all, getmany(max_records="
        f"{DEFAULT_BATCH}), outputs acknowledged then offsets committed per batch",
        "log level": "INFO (default), JSON lines to a file",
        "worker env": env_summary(env),
    }
    if b1 is not None:
        res.settings["batch-1 backlog"] = f"{b1['records']:,} records (smaller: it is slow)"
    for run_ in [*(r for _, r in runs), checkpointed, b1]:
        if run_ is None:
            continue
        res.cpu[run_["name"]] = run_["cpu"]
        lag = run_["commit_lag_s"]
        res.notes.append(
            f"`{run_['name']}`: {run_['records']:,} records in {run_['seconds']:.1f} s "
            f"(first output to last sentinel record); worker ready {run_['ready_s']:.1f} s after "
            f"spawn; worker used {run_['worker_cores']:.2f} cores; "
            f"{run_['alerts']:,} alerts and {run_['audit_records']:,} audit records produced; "
            f"{run_['dead_letters']} dead letters; committed offsets reached the end "
            + (f"{lag:.1f} s after the last sentinel record" if lag is not None else "not in 30 s")
            + (f"; RSS at the end {run_['rss_mb']:.0f} MB" if run_["rss_mb"] else "")
            + "."
        )
        if run_["dead_letters"]:
            res.notes.append(f"`{run_['name']}`: the backlog produced dead letters: check it.")
    for b in (base_before, base_after):
        res.cpu[f"baseline-{b['tag']}"] = b["cpu"]
    res.notes.append(
        "Baseline passes (same events topic as the engine run): "
        + "; ".join(
            f"{b['tag']}: {b['records']:,} outputs in {b['seconds']:.1f} s ({b['rate']:,.0f} "
            f"events/s from topic timestamps, {b['own_rate']:,.0f} by its own clock)"
            for b in (base_before, base_after)
        )
        + "."
    )

    if opts.domain_ceiling:
        log("engine_throughput: the pure domain alone (no Kafka), in this process")
        try:
            dom = domain_ceiling.measure()
        except Exception as exc:  # the domain API moved: report, do not lose the run
            res.notes.append(f"Pure-domain measurement failed: {type(exc).__name__}: {exc}")
        else:
            res.add(
                Figure(
                    "pure domain alone, children seen for the first time", dom["fresh"], "events/s"
                )
            )
            res.add(
                Figure(
                    f"pure domain alone, children with {dom['cap']} remembered event ids",
                    dom["mature"],
                    "events/s",
                    note=f"state {dom['state_bytes']:,.0f} bytes per child",
                )
            )
            res.notes.append(
                "Pure domain: `streams.engine.batch.process_batch` plus encoding each written "
                f"state, batches of {domain_ceiling.BATCH} check-ins over a dict, no Kafka/RocksDB "
                "(bench/domain_ceiling.py). The backlog above gives each child about ten events, "
                "so its states are small; a long-known child's state holds the full window of "
                f"{dom['cap']} event ids ({dom['state_bytes']:,.0f} bytes), and every event "
                "decodes and re-encodes it."
            )
            share = domain_ceiling.metrics_share()
            res.add(
                Figure(
                    "engine metrics recording, in process, vs the domain work it counts",
                    share,
                    "",
                    fmt="{:.1%}",
                    note="mixed backlog; bench/domain_ceiling.py metrics_share",
                )
            )
    if opts.profile:
        prof = profile.Profiler(bench.root / "profile", seconds=opts.profile_seconds)
        if not prof.available():
            res.notes.append(
                "Profile skipped: py-spy is not installed (`.venv/bin/pip install py-spy`)."
            )
        else:
            log("engine_throughput: profiling a separate engine run with py-spy")
            p3 = await prepare(
                bench, "throughput-profile", opts.profile_events, max(1, opts.profile_events // 10)
            )
            await run_engine(bench, p3, within=max(180.0, opts.profile_events / 200), profiler=prof)
            res.sections.append(("Where the engine's time goes (py-spy)", prof.report()))
            if not opts.keep:
                shutil.rmtree(Path(prof.directory), ignore_errors=True)
    return res
