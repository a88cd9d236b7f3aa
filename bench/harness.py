"""What every scenario needs: isolated worker processes, fast producing, topic reading, RSS.

Each scenario gets its own topic prefix, consumer group, data dir, outbox and web port (like
``tests/conftest.py``'s ``pipeline_env``), so scenarios sharing one broker never see each
other's records. Every process started here is registered and killed on exit, also on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config.settings import POLICY_DIR, Settings
from streams.kafka.admin import ensure_topics
from streams.kafka.partitioning import partition_for

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

# Every process a scenario starts (each leads its own process group), so the run can end them
# on any exit path.
_PROCESSES: list[subprocess.Popen[bytes]] = []
_PIDS: list[int] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wall() -> float:
    return time.time()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the run


@dataclass
class Bench:
    """One benchmark run: the broker, a scratch directory, and the run id for unique names."""

    bootstrap: str
    root: Path
    broker_pid: int | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    shared: dict[str, Any] = field(default_factory=dict)  # populations handed between scenarios

    def our_pids(self) -> list[int]:
        """This process and the broker (when we know its pid): counted as ours, not others."""
        return [os.getpid()] + ([self.broker_pid] if self.broker_pid else [])

    def env(self, name: str, **extra: str) -> dict[str, str]:
        """Settings for one isolated pipeline (own topics, group, state, outbox, web port)."""
        prefix = f"bench-{self.run_id}-{name}"
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {
            "MISSING_ALERTS_KAFKA_BOOTSTRAP": self.bootstrap,
            "MISSING_ALERTS_APP_ID": prefix,
            "MISSING_ALERTS_TOPIC_PREFIX": prefix,
            "MISSING_ALERTS_TOPIC_PARTITIONS": "4",
            "MISSING_ALERTS_DATA_DIR": str(home / "var"),
            "MISSING_ALERTS_OUTBOX_PATH": str(home / "outbox.jsonl"),
            "MISSING_ALERTS_WEB_PORT": str(port),
            "MISSING_ALERTS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "MISSING_ALERTS_LOG_FORMAT": "json",
            "MISSING_ALERTS_ENVIRONMENT": "test",
        }
        env.update(extra)
        return env


def settings_for(env: dict[str, str]) -> Settings:
    return Settings(
        kafka_bootstrap=env["MISSING_ALERTS_KAFKA_BOOTSTRAP"],
        topic_prefix=env["MISSING_ALERTS_TOPIC_PREFIX"],
        topic_partitions=int(env["MISSING_ALERTS_TOPIC_PARTITIONS"]),
        app_id=env["MISSING_ALERTS_APP_ID"],
    )


def topic(env: dict[str, str], name: str) -> str:
    return f"{env['MISSING_ALERTS_TOPIC_PREFIX']}.{name}"


def changelog_topic(env: dict[str, str]) -> str:
    return f"{env['MISSING_ALERTS_APP_ID']}-episodes-changelog"


async def create_topics(env: dict[str, str]) -> None:
    """The pipeline's topics, created as the worker would, and waited for until every partition
    has a leader (producing at once otherwise logs NotLeaderForPartition retries)."""
    settings = settings_for(env)
    await ensure_topics(settings)
    names = [f"{settings.topic_prefix}.{n}" for n in ("events", "due", "profiles", "alerts")]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers())
    await admin.start()
    try:
        for _ in range(100):
            described = await admin.describe_topics(names)
            leaders = [p["leader"] for d in described for p in d["partitions"]]
            if leaders and all(x is not None and x >= 0 for x in leaders):
                return
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def policy_copy(dest: Path, edits: dict[str, Sequence[tuple[str, str]]]) -> Path:
    """The shipped policy dir with exact text replacements per file (each must match once)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(POLICY_DIR, dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for name, replacements in edits.items():
        path = dest / name
        text = path.read_text()
        for old, new in replacements:
            if text.count(old) != 1:
                raise RuntimeError(f"policy copy: {old!r} is not in {name} exactly once")
            text = text.replace(old, new)
        path.write_text(text)
    return dest


def keys_per_partition(partitions: int, prefix: str) -> list[str]:
    """One child ref per partition (by the Java/aiokafka/Faust partitioner)."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        ref = f"{prefix}{i}"
        found.setdefault(partition_for(ref.encode(), partitions), ref)
        i += 1
    return [found[p] for p in range(partitions)]


# ----------------------------------------------------------------------- processes


def register(proc: subprocess.Popen[bytes]) -> None:
    _PROCESSES.append(proc)


def register_pid(pid: int) -> None:
    """A process started some other way (asyncio), leader of its own process group."""
    _PIDS.append(pid)


def unregister_pid(pid: int) -> None:
    """The process has exited and been reaped: its pid may be reused, never signal it."""
    with contextlib.suppress(ValueError):
        _PIDS.remove(pid)


def kill_all() -> None:
    """SIGKILL every process group this run started that is still alive."""
    for proc in _PROCESSES:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
    for pid in _PIDS:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    _PROCESSES.clear()
    _PIDS.clear()


def proc_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a worker and its engine process)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def proc_rss_mb(pid: int) -> float | None:
    """VmRSS of one process, in MB (10^6 bytes)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def system_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(x) for x in parts[:8]]  # user nice system idle iowait irq softirq steal
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]
    total = sum(values)
    return (total - idle) / ticks, total / ticks


class CpuWatch:
    """CPU used by the machine, by our own processes, and by everything else over an interval.

    "Others" = machine busy time minus our processes (bench, workers, broker): other work on a
    shared host that competes with the run. Reported so a disturbed figure can be spotted.
    Call ``sample()`` while short-lived processes run: an exited process keeps its last value.
    """

    def __init__(self, pids: Iterable[int]) -> None:
        self.t0 = time.monotonic()
        self.busy0, _ = system_cpu_s()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.roots = list(pids)
        for pid in self.roots:
            for member in proc_tree(pid):
                self.add(member)

    def add(self, pid: int, *, born_after_start: bool = False) -> None:
        if pid not in self.first:
            self.first[pid] = 0.0 if born_after_start else proc_cpu_s(pid)
            self.last[pid] = proc_cpu_s(pid)

    def sample(self) -> None:
        # Children started since (a worker's engine process) count from zero.
        for root in self.roots:
            for member in proc_tree(root):
                self.add(member, born_after_start=True)
        for pid in self.first:
            if Path(f"/proc/{pid}").exists():
                self.last[pid] = max(self.last[pid], proc_cpu_s(pid))

    def result(self) -> dict[str, float]:
        self.sample()
        elapsed = max(1e-6, time.monotonic() - self.t0)
        busy, _ = system_cpu_s()
        ours = sum(self.last[pid] - self.first[pid] for pid in self.first) / elapsed
        machine = (busy - self.busy0) / elapsed
        return {
            "elapsed_s": elapsed,
            "machine_cores": machine,
            "ours_cores": ours,
            "others_cores": max(0.0, machine - ours),
        }


@dataclass
class Worker:
    """One ``python -m streams.cli worker`` subprocess with its own env and log file."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    spawned_at: float = 0.0  # wall clock of the last spawn
    spawned_mono: float = 0.0
    log_offset: int = 0  # size of the log file at the last spawn
    repo: Path = REPO  # the code it runs (another checkout for a same-run A/B)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        out = self.log_path.open("ab")
        self.spawned_at, self.spawned_mono = time.time(), time.monotonic()
        # Only the settings given here: none leak in from the shell running the benchmark.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("MISSING_ALERTS_")}
        self.proc = subprocess.Popen(
            [PY, "-m", "streams.cli", "worker"],
            cwd=self.repo,
            env={**inherited, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        register(self.proc)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def current_logs(self) -> str:
        """The log of the latest start only."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            fh.seek(self.log_offset)
            return fh.read().decode(errors="replace")

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"worker exited unexpectedly:\n{self.current_logs()[-3000:]}")

    async def wait_ready(self, within: float = 180.0) -> float:
        """Wait for Faust's "Worker ready" (partitions assigned, tables recovered).

        Returns seconds from spawn to the moment the log line was seen (0.1 s polling)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.check_alive()
            if "Worker ready" in self.current_logs():
                return time.monotonic() - self.spawned_mono
            await asyncio.sleep(0.1)
        raise RuntimeError(f"worker not ready in {within}s:\n{self.current_logs()[-3000:]}")

    def ready_wall(self, marker: str = "Worker ready") -> float | None:
        """Wall time of the last ``marker`` line since the latest start, from the JSON log:
        Faust's "Worker ready", or the engine's "engine partitions assigned"."""
        found: list[float] = []
        for line in self.current_logs().splitlines():
            if marker not in line:
                continue
            try:
                stamp = json.loads(line[line.index("{") :]).get("timestamp")
            except (ValueError, AttributeError):
                continue
            if stamp:
                found.append(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
        return found[-1] if found else None

    def rss_mb(self) -> float | None:
        """The worker and its engine process together."""
        if not self.alive():
            return None
        sizes = [proc_rss_mb(p) for p in proc_tree(self.pid)]
        return sum(x for x in sizes if x is not None)

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(p) for p in proc_tree(self.pid)) if self.alive() else 0.0

    def kill(self) -> None:
        """SIGKILL the process group: no shutdown hooks, no final commit."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


# --------------------------------------------------------------------------- Kafka I/O


async def produce_fast(
    bootstrap: str,
    topic_name: str,
    records: Iterable[tuple[bytes, bytes]],
    *,
    linger_ms: int = 20,
) -> float:
    """Send everything without awaiting each record, then flush; acks=all. Returns seconds."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    t0 = time.monotonic()
    try:
        futures = []
        for key, value in records:
            futures.append(await producer.send(topic_name, value, key=key))
        await producer.flush()
        for fut in futures:
            fut.result()  # raises if any record failed
    finally:
        await producer.stop()
    return time.monotonic() - t0


async def partitions_of(bootstrap: str, topic_name: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic_name])
    finally:
        await admin.close()
    parts = [p["partition"] for d in described if d["topic"] == topic_name for p in d["partitions"]]
    return [TopicPartition(topic_name, p) for p in sorted(parts)]


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    timestamp_ms: int  # producer CreateTime
    key: bytes | None
    value: bytes | None

    def json(self) -> Any:
        return json.loads(self.value) if self.value is not None else None


async def read_topic(bootstrap: str, topic_name: str) -> list[Rec]:
    """Every record present when the call starts, per-partition order."""
    tps = await partitions_of(bootstrap, topic_name)
    if not tps:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
        isolation_level="read_committed",  # what dispatch sees of the engine's transactions
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Rec] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < ends[tp]:
                        out.append(Rec(tp.partition, r.offset, r.timestamp, r.key, r.value))
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


async def first_timestamp_ms(bootstrap: str, topic_name: str) -> int | None:
    """The smallest CreateTime among the first record of each partition."""
    tps = await partitions_of(bootstrap, topic_name)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        best: int | None = None
        for tp in tps:
            if ends[tp] <= starts[tp]:
                continue
            consumer.seek(tp, starts[tp])
            batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
            for records in batch.values():
                for r in records:
                    best = r.timestamp if best is None else min(best, r.timestamp)
        return best
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    tps = [tp for t in topics for tp in await partitions_of(bootstrap, t)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


async def group_lag(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """Records in ``topics`` not yet committed by ``group`` (uncommitted partitions count all).

    A topic written in transactions (the engine's outputs) ends with a commit marker that no
    consumer receives, so a group done with a partition may have committed just short of its
    end: what lies between is read (read_committed), and a gap without a data record counts 0.
    """
    ends = await end_offsets(bootstrap, topics)
    committed = await committed_offsets(bootstrap, group)
    gaps = {tp: (max(0, committed.get(tp, 0)), end) for tp, end in ends.items()}
    gaps = {tp: (start, end) for tp, (start, end) in gaps.items() if end > start}
    if not gaps:
        return 0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        lag = 0
        for tp, (start, end) in gaps.items():
            if await _holds_records(consumer, tp, start, end):
                lag += end - start
        return lag
    finally:
        await consumer.stop()


async def _holds_records(
    consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int
) -> bool:
    consumer.assign([tp])
    consumer.seek(tp, start)
    deadline = time.monotonic() + 5
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=500)
        if any(r.offset < end for records in batch.values() for r in records):
            return True
        if time.monotonic() > deadline:
            return True  # not readable yet (a transaction still open): not done
    return False


async def wait_caught_up(
    bootstrap: str,
    group: str,
    topics: Sequence[str],
    *,
    within: float,
    poll: float = 0.5,
    worker: Worker | None = None,
) -> float:
    """Wait until ``group`` has committed the end of every partition of ``topics``.

    Returns the monotonic time it was first seen caught up. Raises on timeout or if
    ``worker`` dies meanwhile."""
    deadline = time.monotonic() + within
    lag = -1
    while time.monotonic() < deadline:
        if worker is not None:
            worker.check_alive()
        lag = await group_lag(bootstrap, group, topics)
        if lag == 0:
            return time.monotonic()
        await asyncio.sleep(poll)
    raise TimeoutError(f"group {group} still {lag} records behind on {list(topics)}")


# ------------------------------------------------------------------------------ stats


@dataclass
class Window:
    """One measured window of HTTP clients: requests started from ``measure_from`` are timed
    (ms) and their statuses counted; all stop at ``stop_at``."""

    measure_from: float
    stop_at: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


async def paced_client(
    request: Callable[[int], Awaitable[int]], window: Window, interval: float
) -> None:
    """One client calling ``request(n)`` (it returns the HTTP status) every ``interval``
    seconds (0: back to back) until the window closes."""
    began, n = time.monotonic(), 0
    while time.monotonic() < window.stop_at:
        if interval:
            await asyncio.sleep(max(0.0, began + n * interval - time.monotonic()))
        t0 = time.monotonic()
        status = await request(n)
        n += 1
        if t0 >= window.measure_from:
            window.latencies.append((time.monotonic() - t0) * 1000)
            window.statuses[status] = window.statuses.get(status, 0) + 1


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


class TopicTail:
    """Follows topics from a starting point in the background, keeping records that ``keep``
    accepts (it sees key and raw value; keep it cheap: it shares the CPU with the worker)."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        keep: Any,
        *,
        from_beginning: bool = True,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.keep = keep
        self.from_beginning = from_beginning
        self.records: list[Rec] = []
        self.received_at: list[float] = []  # wall clock when each kept record arrived here
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        tps = [tp for t in self.topics for tp in await partitions_of(self.bootstrap, t)]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=50,
            isolation_level="read_committed",
        )
        await consumer.start()
        consumer.assign(tps)
        if self.from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
            for tp in tps:  # resolve the lazy seek now, so "the end" means now
                await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            now = time.time()
            for tp, records in batch.items():
                for r in records:
                    if self.keep(r.key, r.value):
                        self.records.append(
                            Rec(tp.partition, r.offset, r.timestamp, r.key, r.value)
                        )
                        self.received_at.append(now)

    async def wait_for(self, count: int, within: float, worker: Worker | None = None) -> bool:
        deadline = time.monotonic() + within
        while len(self.records) < count:
            if time.monotonic() >= deadline:
                return False
            if worker is not None:
                worker.check_alive()
            if self._task is not None and self._task.done():
                self._task.result()  # surfaces the consumer's exception
            await asyncio.sleep(0.05)
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
