"""Send a set of records and do not return until Kafka has acknowledged every one.

The engine writes state only after its effects are durable, so a send that fails (broker down,
leader moving) is retried here with backoff rather than raised: raising inside a Faust batch
would still ack the batch and lose the effects. Re-sends may duplicate a record; every record
carries a deterministic id that consumers de-duplicate on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from telemetry.logging import get_logger

log = get_logger("missing_alerts.sending")


async def send_durably(
    items: Sequence[tuple[Any, bytes | None, Any]], *, max_backoff_s: float = 5.0
) -> None:
    """``items``: (faust topic, key, value). Returns once all are acknowledged."""
    pending = list(items)
    attempt = 0
    while pending:
        # Sequential hand-off keeps per-partition order (an episode's "opened" before "closed");
        # only the waiting for acknowledgements is concurrent.
        futures: list[Any] = []
        for topic, key, value in pending:
            try:
                futures.append(await topic.send(key=key, value=value))
            except Exception as exc:
                failed_now: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                failed_now.set_exception(exc)
                futures.append(failed_now)
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [
            item
            for item, res in zip(pending, results, strict=True)
            if isinstance(res, BaseException)
        ]
        if not failed:
            return
        attempt += 1
        delay = min(max_backoff_s, 0.1 * 2**attempt)
        first = next(r for r in results if isinstance(r, BaseException))
        log.warning(
            "kafka send failed, retrying",
            failed=len(failed),
            error=type(first).__name__,
            retry_in_s=delay,
        )
        await asyncio.sleep(delay)
        pending = failed
