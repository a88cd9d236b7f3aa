"""POST /v1/webhooks/twilio/status: Twilio delivery receipts, signature-checked.

Answers 204 only once the receipt is on Kafka, so a broker outage makes Twilio retry the
callback instead of losing it; an unsigned or badly signed request gets 403 and nothing else.
"""

from __future__ import annotations

from typing import Any

import faust
from pydantic import ValidationError

from alerts.notifiers.select import TWILIO_STATUS_PATH
from alerts.receipts import BadCallback, receipt_from_callback, signature_valid
from streams.worker.wiring import Resources, Wiring
from telemetry.logging import episode_code_of, get_logger

log = get_logger("missing_alerts.web.twilio")


def wire_twilio_status(w: Wiring, r: Resources) -> None:
    settings = r.settings
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    base = settings.public_base_url.rstrip("/")
    metrics = r.metrics

    @w.app.page(TWILIO_STATUS_PATH)
    class TwilioStatus(faust.web.View):  # type: ignore[misc]
        async def post(self, request: Any) -> Any:
            if token is None:
                metrics.twilio_callback("not_configured")
                return self.text("twilio is not configured", status=404)
            form = await request.post()
            params = {k: str(v) for k, v in form.items()}
            # Twilio signs the exact public URL it called, query string included.
            url = base + request.raw_path
            if not signature_valid(
                token, url, params, request.headers.get("X-Twilio-Signature", "")
            ):
                log.warning("twilio callback refused: bad signature")
                metrics.twilio_callback("bad_signature")
                return self.text("invalid signature", status=403)
            try:
                receipt = receipt_from_callback(request.query, params, r.clock.now())
            except (BadCallback, ValidationError) as exc:
                metrics.twilio_callback("bad_request")
                return self.text(f"bad callback: {exc}", status=400)
            if receipt is None:
                metrics.twilio_callback("ignored")
                return self.text("", status=204)
            try:
                fut = await w.receipts.send(key=receipt.child_ref.encode(), value=receipt)
                await fut
            except Exception as exc:
                log.error(
                    "receipt not stored",
                    episode_code=episode_code_of(receipt.notification_id),
                    child_ref=receipt.child_ref,
                    error=type(exc).__name__,
                )
                metrics.twilio_callback("unavailable")
                return self.text("try again", status=503, headers={"Retry-After": "5"})
            metrics.twilio_callback("accepted")
            log.info(
                "delivery receipt",
                episode_code=episode_code_of(receipt.notification_id),
                child_ref=receipt.child_ref,
                status=receipt.status.value,
                error_code=receipt.error_code,
            )
            return self.text("", status=204)
