"""SMS through Twilio's Messages API, with the official client in async mode.

One ``send`` is one POST; dispatch decides whether and when to try again. Errors are reduced
to a code ("twilio 21211", "timeout") because exception text can carry the recipient or the
request, and logs must never carry the body or the token.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlencode

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from alerts.notifiers.base import Outcome, SendResult
from schemas.alerts import Channel, Notification

# Twilio error codes that will fail the same way however often they are retried.
PERMANENT_CODES = frozenset(
    {
        21211,  # invalid To number
        21408,  # permission to send to this region not enabled
        21610,  # recipient replied STOP (unsubscribed)
        21614,  # To number is not a mobile number
    }
)
RATE_LIMITED_CODE = 20429

# Twilio's own ceiling for ValidityPeriod (seconds).
MAX_VALIDITY_PERIOD_S = 36_000

# The library logs every request line at INFO; only its warnings are worth keeping.
_quiet_logger = logging.getLogger("twilio.async_http_client.missing_alerts")
_quiet_logger.setLevel(logging.WARNING)


def classify_twilio_error(status: int, code: int | None) -> Outcome:
    """Twilio's answer -> outcome. Public so docs, dispatch and tests share one table."""
    if status == 429 or code == RATE_LIMITED_CODE or status >= 500:
        return Outcome.RETRYABLE
    if code in PERMANENT_CODES or 400 <= status < 500:
        return Outcome.PERMANENT
    return Outcome.RETRYABLE


class TwilioSmsNotifier:
    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        base_url: str | None = None,
        status_callback_url: str | None = None,
        validity_period_s: int = 3600,
        timeout_s: float = 10.0,
    ) -> None:
        if not 1 <= validity_period_s <= MAX_VALIDITY_PERIOD_S:
            raise ValueError(f"validity_period_s must be 1..{MAX_VALIDITY_PERIOD_S}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._account_sid = account_sid
        self._auth_token = auth_token
        self.from_number = from_number
        self.base_url = base_url
        self.status_callback_url = status_callback_url
        self.validity_period_s = validity_period_s
        self.timeout_s = timeout_s
        self._client: Client | None = None
        self._http: AsyncTwilioHttpClient | None = None

    def __repr__(self) -> str:
        return f"TwilioSmsNotifier(account_sid={self._account_sid!r}, base_url={self.base_url!r})"

    def _get_client(self) -> Client:
        # Built on first send, not in __init__: the aiohttp session inside
        # AsyncTwilioHttpClient needs a running loop, and settings are read before there is one.
        if self._client is None:
            self._http = AsyncTwilioHttpClient(timeout=self.timeout_s, logger=_quiet_logger)
            client = Client(self._account_sid, self._auth_token, http_client=self._http)
            if self.base_url:
                # Domain.absolute_url() joins api.base_url with the versioned path, so this
                # redirects every Messages call. TWILIO_EDGE / TWILIO_REGION from the
                # environment would rewrite the host again, so drop them for a custom URL.
                client.api.base_url = self.base_url
                client.edge = None
                client.region = None
            self._client = client
        return self._client

    def callback_url_for(self, notification: Notification) -> str | None:
        """The status callback names the notification and child, so the webhook can route the
        receipt to the partition that owns the delivery record without a lookup."""
        if not self.status_callback_url:
            return None
        # ":" is left unescaped: HTTP clients may normalise "%3A" to ":", and Twilio signs
        # the URL byte for byte, so the form we hand out must be the canonical one.
        query = urlencode(
            {"n": notification.notification_id, "c": notification.child_ref}, safe=":"
        )
        return f"{self.status_callback_url}?{query}"

    async def send(self, notification: Notification) -> SendResult:
        if notification.channel is not Channel.SMS:
            return SendResult(
                Outcome.PERMANENT, error=f"not an sms notification: {notification.channel}"
            )
        client = self._get_client()
        try:
            # AsyncTwilioHttpClient ignores its own timeout (it passes timeout=None to aiohttp,
            # which means "no limit"), so a hung provider is bounded here instead.
            async with asyncio.timeout(self.timeout_s):
                message: Any = await client.messages.create_async(
                    to=notification.address,
                    from_=self.from_number,
                    body=notification.body,
                    status_callback=self.callback_url_for(notification),
                    validity_period=self.validity_period_s,
                )
        except (TwilioRestException, TwilioServiceException) as exc:
            status = int(exc.status)
            # Without a JSON error body the library reuses the HTTP status as the "code".
            code = exc.code if isinstance(exc.code, int) and exc.code != status else None
            label = f"twilio {code}" if code is not None else f"twilio http {status}"
            return SendResult(classify_twilio_error(status, code), error=label)
        except TimeoutError:  # also asyncio.TimeoutError and aiohttp's ServerTimeoutError
            return SendResult(Outcome.RETRYABLE, error="timeout")
        except (aiohttp.ClientError, OSError) as exc:
            return SendResult(Outcome.RETRYABLE, error=f"connection error ({type(exc).__name__})")
        except ValueError as exc:
            # An unparseable 2xx: the message may have gone, but without a SID we cannot tell.
            return SendResult(Outcome.RETRYABLE, error=f"bad response ({type(exc).__name__})")
        sid = getattr(message, "sid", None)
        return SendResult(Outcome.DELIVERED, provider_message_id=sid)

    async def close(self) -> None:
        """Close the pooled aiohttp session; safe to call twice or before any send."""
        if self._http is not None:
            await self._http.close()
        self._http = None
        self._client = None
