"""The baseline the engine is compared with: a plain aiokafka consume -> json.loads -> produce
loop, nothing else. Run as its own process (like the worker), on the same broker and the same
input records, with the same producer acknowledgements (acks=all) and the same batch bound as
the engine (``--batch``, default 500 = MISSING_ALERTS_ENGINE_BATCH_MAX's default).

At-least-once like the engine: a batch's outputs are all acknowledged before its offsets are
committed. Prints one JSON line with its own timing; the benchmark measures it from the output
topic's timestamps, the same way as the engine.

    python -m bench.baseline_loop --bootstrap HOST:PORT --source T --sink T2 --group G --expect N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def run(args: argparse.Namespace) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        args.source,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    seen = 0
    first_send = last_ack = 0.0
    try:
        while seen < args.expect:
            batch = await consumer.getmany(timeout_ms=200, max_records=args.batch)
            futures = []
            for records in batch.values():
                for rec in records:
                    value = json.loads(rec.value) if rec.value is not None else None
                    if not first_send:
                        first_send = time.time()
                    out = json.dumps(value, separators=(",", ":")).encode()
                    futures.append(await producer.send(args.sink, out, key=rec.key))
                    seen += 1
            if futures:
                await asyncio.gather(*futures)
                last_ack = time.time()
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "records": seen,
        "first_send": first_send,
        "last_ack": last_ack,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--batch", type=int, default=500)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
