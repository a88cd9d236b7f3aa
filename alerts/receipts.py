"""Twilio status callbacks as delivery receipts. Pure: signature check and parsing.

Twilio sends no callback for the initial "queued" and may send the rest out of order; the
delivery log moves status only forward, so this just reports what Twilio said.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import NAMESPACE_URL, uuid5

from twilio.request_validator import RequestValidator

from schemas.alerts import DeliveryReceipt, DeliveryStatus

_STATUS = {
    "accepted": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.SENT,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
}


class BadCallback(ValueError):
    """A signed callback that lacks what we put in its URL or what Twilio always sends."""


def signature_valid(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    return bool(signature) and bool(
        RequestValidator(auth_token).validate(url, dict(params), signature)
    )


def receipt_from_callback(
    query: Mapping[str, str], params: Mapping[str, str], now: datetime
) -> DeliveryReceipt | None:
    """The receipt to record, or None for statuses we do not track (e.g. 'read')."""
    nid, child = query.get("n"), query.get("c")
    if not nid or not child:
        raise BadCallback("callback URL lacks the notification (n) or child (c) parameter")
    raw_status = params.get("MessageStatus") or params.get("SmsStatus")
    if not raw_status:
        raise BadCallback("MessageStatus is missing")
    status = _STATUS.get(raw_status)
    if status is None:
        return None
    sid = params.get("MessageSid") or params.get("SmsSid")
    return DeliveryReceipt(
        # The same callback retried by Twilio yields the same receipt id.
        event_id=uuid5(NAMESPACE_URL, f"twilio-status:{sid}:{raw_status}"),
        occurred_at=now,
        child_ref=child,
        notification_id=nid,
        provider_message_id=sid,
        status=status,
        error_code=params.get("ErrorCode") or None,
    )
