"""Run real worker processes for integration tests: start, wait, SIGKILL, restart.

Every process started is remembered until it has exited: ``reap_all`` (an autouse fixture in
tests/conftest.py calls it after each test) stops whatever a failed assertion left running, so
a failing test never leaves a worker consuming from the shared broker under the next one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_STARTED: list[WorkerProcess] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WorkerProcess:
    """One ``missing-alerts worker`` subprocess with its own env, logs kept for assertions."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _STARTED.append(self)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Ready = Faust logged that the worker is ready (partitions assigned, tables recovered)."""
        deadline = time.monotonic() + timeout
        marker = "Worker ready"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.logs()[-4000:]}")
            text = self.logs()
            if text.count(marker) >= self.starts:
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout}s:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit. The crash the tests are about."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM to the process group (as docker stop or Ctrl-C would); the exit code."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else None


def reap_all() -> list[str]:
    """Stop every worker still running; the log paths of those that were (for the report)."""
    left = [w for w in _STARTED if w.proc is not None and w.proc.poll() is None]
    for worker in left:
        worker.stop()
    _STARTED.clear()
    return [str(w.log_path) for w in left]


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``missing-alerts ARGS`` as an operator runs it, with the pipeline's settings."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
