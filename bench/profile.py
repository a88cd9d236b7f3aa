"""Optional: sample a worker with py-spy and say where its main thread spends its time.

py-spy is not a dependency (``.venv/bin/pip install py-spy`` to enable). Samples are taken
with ``--threads`` so the event loop thread (which runs every agent, the table and the producer)
can be told apart from Faust's consumer thread and asyncio's file-writing threads. Every sample
of the main thread is put into one bucket: the first rule (in the order below) that matches a
frame of its stack.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.harness import register

# (bucket, patterns matched against "function (file)" frames of the whole stack). Order
# matters: the first matching rule wins, so parts of the engine batch come before the batch.
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("state read (local store get -> RocksDB)", ("StateStore.get", "RocksDBStore.get")),
    ("domain: copy state (model_copy deep=True in apply)", ("BaseModel.model_copy",)),
    ("domain: decode input (pydantic validate_json)", ("decode_input",)),
    ("domain: decode state (table bytes -> ChildState)", ("decode_state",)),
    ("domain: encode state (ChildState -> table bytes)", ("encode_entry", "Write.entry")),
    ("domain: apply + next_due (rest)", ("episodes/machine.py", "episodes/ladder.py")),
    ("domain: batch loop (rest of process_batch)", ("process_batch",)),
    ("state write (RocksDB write batch)", ("RocksDBStore.write",)),
    ("effects: serialise (batch_output, dead letters)", ("batch_output",)),
    ("effects: hand to producer, wait for acks", ("produce_batches_durably", "_until_acked")),
    ("offset commit", ("AIOKafkaConsumer.commit", "commit_offsets")),
    ("logging (structlog / stdlib)", ("structlog", "logging/__init__.py", "log_engine_effects")),
    ("metrics (prometheus / Faust sensors)", ("prometheus", "sensors/", "telemetry/metrics.py")),
    ("dispatch", ("streams/dispatch/", "alerts/")),
    ("timer scan", ("streams/runtime/timers.py", "due_index.py", "Engine._tick")),
    ("Kafka producer I/O (aiokafka sender, socket writes)", ("aiokafka/producer",)),
    ("Faust producer buffer", ("faust/transport/producer.py",)),
    (
        "consuming (fetch, decode records)",
        ("faust/transport/consumer.py", "faust/transport/conductor.py", "aiokafka/consumer"),
    ),
    ("Faust stream plumbing (iterate, take_events, ack)", ("faust/streams.py", "faust/agents")),
]
# When no rule matches, the innermost frame names the bucket.
LEAF_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("other Kafka client I/O (responses, metadata)", ("aiokafka/",)),
    ("asyncio event loop (select, callbacks, tasks)", ("asyncio/", "selectors.py")),
    ("other Faust / mode services", ("faust/", "mode/")),
]

ENGINE_MAIN = "engine MainThread"

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:)]*)(?::\d+)?\)$")


def _frames(stack: str) -> list[str]:
    out = []
    for frame in stack.split(";"):
        m = _FRAME.match(frame.strip())
        if m:
            out.append(f"{m.group('func')} ({m.group('file')})")
        else:
            out.append(frame.strip())
    return out


def classify(frames: list[str]) -> str:
    for bucket, patterns in RULES:
        for frame in frames:
            if any(p in frame for p in patterns):
                return bucket
    leaf = frames[-1] if frames else ""
    for bucket, patterns in LEAF_RULES:
        if any(p in leaf for p in patterns):
            return bucket
    return "other"


class Profiler:
    def __init__(self, directory: Path, *, seconds: float = 20.0, rate: int = 100) -> None:
        self.directory = directory
        self.seconds = seconds
        self.rate = rate
        self.output = directory / "py-spy.raw.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def executable() -> str | None:
        local = Path(sys.executable).parent / "py-spy"
        return str(local) if local.exists() else shutil.which("py-spy")

    def available(self) -> bool:
        return self.executable() is not None

    def attach(self, pid: int) -> None:
        exe = self.executable()
        assert exe is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(self.seconds)),
                "--rate",
                str(self.rate),
                "--threads",
                "--subprocesses",
                "--format",
                "raw",
                "--output",
                str(self.output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        register(self.proc)

    def wait(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=self.seconds + 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def buckets(self) -> tuple[Counter[str], Counter[str]]:
        """(samples per thread name, main-thread samples per bucket)."""
        threads: Counter[str] = Counter()
        buckets: Counter[str] = Counter()
        if not self.output.exists():
            return threads, buckets
        for line in self.output.read_text(errors="replace").splitlines():
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            # With --subprocesses a stack starts "process <pid>:"<cmdline>"", then the thread.
            # (nested: "process <parent>;process <child>;thread ..." for the engine).
            process = "worker"
            head, _, rest = stack.partition(";")
            while head.startswith("process"):
                process = "engine" if "engine_process" in head else "worker"
                head, _, rest = rest.partition(";")
            thread = head.split(":", 1)[-1].strip() if head.startswith("thread") else "?"
            name = f"{process} {thread}"
            threads[name] += n
            if name == ENGINE_MAIN:
                buckets[classify(_frames(rest))] += n
        return threads, buckets

    def report(self) -> str:
        threads, buckets = self.buckets()
        total = sum(buckets.values())
        if not total:
            return "py-spy recorded no samples of the engine process's main thread."
        possible = self.seconds * self.rate
        lines = [
            f"A separate engine run on the same kind of backlog, sampled by py-spy for "
            f"{self.seconds:.0f} s at {self.rate} Hz (`--threads --subprocesses`). The engine "
            f"process's main thread (its event loop: consume, apply, produce, store, commit) "
            f"was busy in {total:,} of ~{possible:,.0f} possible samples "
            f"({total / possible:.0%}); the worker process's main thread (API, dispatch, Faust) "
            f"in {threads.get('worker MainThread', 0):,}. Engine main-thread samples by what "
            "they were doing (first matching rule of `bench/profile.py`):",
            "",
            "| share | bucket |",
            "|---:|---|",
        ]
        for bucket, n in buckets.most_common():
            lines.append(f"| {n / total:.1%} | {bucket} |")
        domain = sum(n for b, n in buckets.items() if b.startswith("domain"))
        lines += [
            "",
            f"The pure domain (decode, apply, encode) is {domain / total:.0%} of the engine's "
            f"main thread; the remaining {1 - domain / total:.0%} is aiokafka, RocksDB, "
            "logging and metrics around it.",
            "",
            "Other threads (samples): "
            + ", ".join(f"{name} {n:,}" for name, n in threads.most_common() if name != ENGINE_MAIN)
            + ".",
        ]
        return "\n".join(lines)
