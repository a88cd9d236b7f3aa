"""The benchmark's peer: an unmodified Quix Streams application doing the engine's per-record
work (decode the event, apply it to the child's state with the same state machine, encode the
alerts, audit records and new state), with Quix's own RocksDB state, changelog and 5 s
checkpoints. Runs in its own virtualenv (.venv-peer: quixstreams and this project, made by
scripts/bench), so the project itself never depends on Quix.

    .venv-peer/bin/python -m bench.quix_peer --bootstrap B --source T --sink S --group G \\
        --state-dir D [--guarantee at-least-once|exactly-once] [--commit-interval 5]

It runs until stopped (SIGTERM); the benchmark stops it once the sentinel records' outputs
are on the sink topic and measures from the sink's record timestamps, as for the baseline and
the engine. Quix gives an output its input's timestamp, so the one change to its defaults is a
``set_timestamp`` to the wall clock when the record is processed (the engine's outputs carry
their send time). Arrival times at a reader would not do: with exactly-once a checkpoint's
outputs become visible all at once at its commit, and a reader sees bursts, not a rate.
"""

from __future__ import annotations

import argparse
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from quixstreams import Application

from config.loading import load_policy
from config.settings import POLICY_DIR
from schemas.wire import dumps
from streams.episodes import machine
from streams.episodes.codec import decode_state, encode_entry
from streams.kafka.decode import Rejection, decode_input

SKEW = timedelta(minutes=5)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--bootstrap", "--source", "--sink", "--group", "--state-dir"):
        parser.add_argument(name, required=True)
    parser.add_argument("--guarantee", default="at-least-once")
    parser.add_argument("--commit-interval", type=float, default=5.0)
    args = parser.parse_args()
    policy = load_policy(POLICY_DIR)
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        processing_guarantee=args.guarantee,
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(args.source, key_deserializer="bytes", value_deserializer="bytes")
    sink = app.topic(args.sink, key_serializer="bytes", value_serializer="bytes")

    def apply(value: bytes, key: bytes, _timestamp: int, _headers: Any, state: Any) -> list[bytes]:
        now = datetime.now(UTC)
        event = decode_input(key, value, now=now, skew_tolerance=SKEW)
        if isinstance(event, Rejection):
            return [dumps({"rejected": event.reason})]
        raw = state.get("state")  # Quix state values are JSON: the entry is kept as text
        current = decode_state(raw.encode()) if raw else None
        new, effects = machine.apply(current, event, now, policy, reuse_state=True)
        due = machine.next_due(new, policy)
        entry = encode_entry(new, due.at if due else None, due.episode_code if due else None)
        state.set("state", entry.decode())
        return [dumps(a) for a in effects.alerts] + [dumps(r) for r in effects.records]

    sdf = app.dataframe(source)
    sdf = sdf.apply(apply, stateful=True, expand=True, metadata=True)
    sdf = sdf.set_timestamp(lambda _value, _key, _ts, _headers: time.time_ns() // 1_000_000)
    sdf.to_topic(sink)
    signal.signal(signal.SIGTERM, lambda *_: app.stop())
    app.run()


if __name__ == "__main__":
    main()
