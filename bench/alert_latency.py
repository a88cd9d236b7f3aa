"""Scenario 5: absence produced -> SMS request received by a Twilio fake, under background load.

The worker sends SMS through the real twilio client to ``tests/support/fake_twilio.py`` running
in a thread of this process (email goes to the outbox file). A background producer sends
check-ins at a steady rate for a set of children with no episode; absences (high risk, one new
child each, whose profile was produced during set-up, as the Philomena protocol prepares it)
are produced one at a time, evenly spaced. Latency of one SMS = the fake's
``received_at`` (time.time()) minus the time.time() taken just before the absence was handed
to the producer (the producer waits for acks=all, so the figure includes that round trip). The
absence's first step texts two people (duty social worker, police liaison); both requests count,
matched to their absence by the episode code in the body.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.harness import (
    CpuWatch,
    Worker,
    create_topics,
    log,
    percentile,
    produce_fast,
    topic,
)
from bench.report import env_summary
from bench.results import Figure, Result, at_most
from bench.workload import CSE, absence, check_in, code_of, encode, profile

NAME = "alert_latency"
TARGET_P50_MS = 50.0
TARGET_P99_MS = 200.0
FROM_NUMBER = "+447700900999"
CODE_IN_BODY = re.compile(r"ACK ([A-Z0-9]{4,12})")


async def _background(
    bootstrap: str, topic_name: str, rate: float, children: int, stop: Any
) -> int:
    """Check-ins at ``rate``/s in 20 ms ticks until ``stop`` is set; returns how many."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent = 0
    tick = 0.02
    t0 = time.monotonic()
    try:
        while not stop.is_set():
            due = int((time.monotonic() - t0) * rate)
            now = datetime.now(UTC)
            while sent < due:
                key, value = encode(check_in(f"L{sent % children:05d}", now))
                await producer.send(topic_name, value, key=key)
                sent += 1
            await asyncio.sleep(tick)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def run(bench: Any, opts: Any) -> Result:
    from tests.support.fake_twilio import FakeTwilio  # the project's own fake, in a thread

    res = Result(NAME, "Alert latency: absence -> SMS request")
    fake = FakeTwilio()
    base_url = fake.run_in_thread()
    env = bench.env(
        "latency",
        MISSING_ALERTS_TWILIO_ACCOUNT_SID=fake.account_sid,
        MISSING_ALERTS_TWILIO_AUTH_TOKEN=fake.auth_token,
        MISSING_ALERTS_TWILIO_FROM_NUMBER=FROM_NUMBER,
        MISSING_ALERTS_TWILIO_BASE_URL=base_url,
    )
    bootstrap = env["MISSING_ALERTS_KAFKA_BOOTSTRAP"]
    events_topic = topic(env, "events")
    await create_topics(env)
    worker = Worker(env, bench.root / "latency" / "worker.log")
    worker.start()
    stop = asyncio.Event()
    background: asyncio.Task[int] | None = None
    sent_at: dict[str, float] = {}
    children = [f"A{bench.run_id}{i:05d}" for i in range(opts.latency_absences)]
    try:
        now = datetime.now(UTC)
        await produce_fast(bootstrap, events_topic, (encode(profile(c, now)) for c in children))
        await worker.wait_ready()
        background = asyncio.create_task(
            _background(bootstrap, events_topic, opts.latency_checkins, 2000, stop)
        )
        await asyncio.sleep(opts.latency_warmup)  # background load reaches steady state
        log(
            f"alert_latency: {opts.latency_absences} absences, one every "
            f"{opts.latency_interval:.2f} s, under {opts.latency_checkins:g} check-ins/s"
        )
        watch = CpuWatch([worker.pid, *bench.our_pids()])
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        t_start = time.monotonic()
        try:
            for i, child in enumerate(children):
                target = t_start + i * opts.latency_interval
                await asyncio.sleep(max(0.0, target - time.monotonic()))
                now = datetime.now(UTC)
                event = absence(child, now, now, [CSE])
                key, value = encode(event)
                sent_at[code_of(event)] = time.time()
                await producer.send_and_wait(events_topic, value, key=key)
        finally:
            await producer.stop()
        produced_s = time.monotonic() - t_start
        expected = 2 * len(sent_at)
        deadline = time.monotonic() + 30
        while len(fake.requests) < expected and time.monotonic() < deadline:
            worker.check_alive()
            await asyncio.sleep(0.2)
        cpu = watch.result()
    finally:
        stop.set()
        checkins = await background if background is not None else 0
        worker.stop()
        fake.stop_thread()

    latencies: list[float] = []
    first: dict[str, float] = {}
    unmatched = 0
    for req in fake.requests:
        m = CODE_IN_BODY.search(req.body or "")
        if not m or m.group(1) not in sent_at:
            unmatched += 1
            continue
        ms = (req.received_at - sent_at[m.group(1)]) * 1000
        latencies.append(ms)
        first[m.group(1)] = min(first.get(m.group(1), ms), ms)
    p50 = percentile(latencies, 50) if latencies else None
    p99 = percentile(latencies, 99) if latencies else None
    res.add(Figure("p50, every SMS", p50, "ms", f"<= {TARGET_P50_MS:.0f} ms", at_most(p50, 50)))
    res.add(Figure("p99, every SMS", p99, "ms", f"<= {TARGET_P99_MS:.0f} ms", at_most(p99, 200)))
    res.add(Figure("max, every SMS", max(latencies) if latencies else None, "ms"))
    firsts = list(first.values())
    res.add(
        Figure("p50, first SMS of each absence", percentile(firsts, 50) if firsts else None, "ms")
    )
    res.add(
        Figure("p99, first SMS of each absence", percentile(firsts, 99) if firsts else None, "ms")
    )
    res.cpu["absences"] = cpu
    elapsed = max(1e-6, cpu["elapsed_s"])
    res.notes.append(
        f"{len(sent_at)} absences over {produced_s:.0f} s; {len(latencies)} of {2 * len(sent_at)} "
        f"expected SMS requests matched ({unmatched} unmatched); background check-ins sent: "
        f"{checkins:,} (about {opts.latency_checkins:g}/s requested); this run's processes "
        f"(worker, bench with the fake, broker) used {cpu['ours_cores']:.2f} cores over the "
        f"{elapsed:.0f} s from the first absence to the last SMS."
    )
    res.settings = {
        "notifiers": "SMS: twilio client -> tests/support/fake_twilio.py (in a thread of the "
        "bench process, answers 201 at once); email: outbox file",
        "background": f"{opts.latency_checkins:g} check-ins/s over 2,000 children with no episode",
        "absences": f"{opts.latency_absences}, one every {opts.latency_interval:.2f} s, each a "
        "new child, flag child_sexual_exploitation (high tier: first step texts two people)",
        "worker env": env_summary(env),
    }
    return res
