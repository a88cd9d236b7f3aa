"""A real HTTP server that answers like Twilio's Messages API, for the real twilio client.

Tests switch its behaviour at runtime (accept, fail with a status/code, hang) and read back
what arrived. It also posts status callbacks signed the way Twilio signs them, so webhook
tests exercise real signature checking.

Two ways to run it:
- inside a pytest-asyncio test: ``async with FakeTwilio() as fake:`` (same event loop);
- for a system under test in a subprocess: ``base_url = fake.run_in_thread()`` ...
  ``fake.stop_thread()``; every public read is thread-safe and the ``*_sync`` helpers block.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Literal, Self

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
MESSAGES_ROUTE = f"/{API_VERSION}/Accounts/{{sid}}/Messages.json"
CALLBACK_TIMEOUT_S = 5.0
CALLBACK_STATUSES = ("sent", "delivered", "undelivered", "failed")


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class Reply:
    """How the fake answers one request. ``hang`` holds the request until ``release()``."""

    kind: Literal["ok", "error", "hang"]
    status: int = 201
    code: int | None = None
    message: str = ""
    then: Reply | None = None  # for "hang": the answer once released (default: ok)

    @classmethod
    def ok(cls) -> Reply:
        return cls("ok")

    @classmethod
    def error(cls, status: int, code: int | None = None, message: str = "") -> Reply:
        return cls("error", status=status, code=code, message=message or f"fake error {code}")

    @classmethod
    def rate_limited(cls) -> Reply:
        return cls.error(429, 20429, "Too Many Requests")

    @classmethod
    def server_error(cls) -> Reply:
        return cls.error(500, None, "Internal Server Error")

    @classmethod
    def hang(cls, then: Reply | None = None) -> Reply:
        return cls("hang", then=then)


@dataclass(frozen=True)
class RecordedRequest:
    account_sid: str
    authorized: bool
    form: Mapping[str, str]
    received_at: float  # time.time()
    received_monotonic: float
    message_sid: str | None = None  # set once answered 201

    @property
    def to(self) -> str | None:
        return self.form.get("To")

    @property
    def from_(self) -> str | None:
        return self.form.get("From")

    @property
    def body(self) -> str | None:
        return self.form.get("Body")

    @property
    def status_callback(self) -> str | None:
        return self.form.get("StatusCallback")

    @property
    def validity_period(self) -> str | None:
        return self.form.get("ValidityPeriod")

    @property
    def notification_id(self) -> str | None:
        """Dispatch's notification id, which it puts in the status callback URL (``?n=``)."""
        if not self.status_callback or "?" not in self.status_callback:
            return None
        query = urllib.parse.parse_qs(self.status_callback.split("?", 1)[1])
        return query["n"][0] if "n" in query else None


@dataclass(frozen=True)
class PostedCallback:
    url: str
    params: Mapping[str, str]
    signature: str
    response_status: int


@dataclass
class _State:
    default: Reply = field(default_factory=Reply.ok)
    script: deque[Reply] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)


class FakeTwilio:
    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self._state = _State()
        self._per_number: dict[str, Reply] = {}
        self._cond = threading.Condition()
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hang_release: asyncio.Event | None = None
        self._hanging = 0
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- behaviour ------------------------------------------------------------------------

    def respond_with(self, reply: Reply) -> None:
        """Answer every request this way from now on (after any scripted replies)."""
        with self._cond:
            self._state.default = reply

    def queue(self, reply: Reply, times: int = 1) -> None:
        """Answer the next ``times`` requests this way, then fall back to the default."""
        with self._cond:
            self._state.script.extend([reply] * times)

    def answer_number(self, to: str, reply: Reply) -> None:
        """Always answer requests to this number this way (e.g. 21211 for a bad number)."""
        with self._cond:
            self._per_number[to] = reply

    def release(self) -> None:
        """Let every hung request answer; later ``hang`` replies hang again."""
        loop, event = self._loop, self._hang_release
        if loop is None or event is None:
            return
        self._hang_release = asyncio.Event()
        loop.call_soon_threadsafe(event.set)

    @property
    def hanging(self) -> int:
        with self._cond:
            return self._hanging

    # -- observations ---------------------------------------------------------------------

    @property
    def requests(self) -> tuple[RecordedRequest, ...]:
        with self._cond:
            return tuple(self._state.requests)

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("FakeTwilio is not running")
        return f"http://127.0.0.1:{self.port}"

    async def wait_for_requests(self, count: int, within: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + within
        while True:
            found = self.requests
            if len(found) >= count:
                return list(found)
            if time.monotonic() >= deadline:
                raise AssertionError(f"expected {count} requests, got {len(found)}")
            await asyncio.sleep(0.01)

    def wait_for_requests_sync(self, count: int, within: float = 5.0) -> list[RecordedRequest]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self._state.requests) >= count, within)
            found = list(self._state.requests)
        if not ok:
            raise AssertionError(f"expected {count} requests, got {len(found)}")
        return found

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> str:
        self._loop = asyncio.get_running_loop()
        self._hang_release = asyncio.Event()
        app = web.Application()
        app.router.add_post(MESSAGES_ROUTE, self._create_message)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()
        return self.base_url

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def run_in_thread(self, timeout: float = 10.0) -> str:
        """Serve from a daemon thread with its own loop; returns the base URL."""
        started = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                errors.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.close()

        self._thread = threading.Thread(target=serve, name="fake-twilio", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise RuntimeError("FakeTwilio did not start")
        if errors:
            raise errors[0]
        return self.base_url

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None

    # -- the Messages API -----------------------------------------------------------------

    def _next_reply(self) -> Reply:
        with self._cond:
            return self._state.script.popleft() if self._state.script else self._state.default

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(f"{user}:{password}", f"{self.account_sid}:{self.auth_token}")

    def _record(self, record: RecordedRequest) -> int:
        with self._cond:
            self._state.requests.append(record)
            self._cond.notify_all()
            return len(self._state.requests) - 1

    def _set_sid(self, index: int, sid: str) -> None:
        with self._cond:
            self._state.requests[index] = replace(self._state.requests[index], message_sid=sid)

    async def _create_message(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        form = {k: str(v) for k, v in (await request.post()).items()}
        authorized = self._authorized(request) and sid == self.account_sid
        index = self._record(RecordedRequest(sid, authorized, form, time.time(), time.monotonic()))
        if not authorized:
            return _error_response(401, 20003, "Authenticate")
        with self._cond:
            fixed = self._per_number.get(form.get("To", ""))
        reply = fixed or self._next_reply()
        if reply.kind == "hang":
            await self._hang()
            reply = reply.then or Reply.ok()
        if reply.kind == "error":
            return _error_response(reply.status, reply.code, reply.message)
        message_sid = new_sid("SM")
        self._set_sid(index, message_sid)
        return web.json_response(_message_resource(sid, message_sid, form), status=201)

    async def _hang(self) -> None:
        event = self._hang_release
        assert event is not None
        with self._cond:
            self._hanging += 1
        try:
            await event.wait()
        finally:
            with self._cond:
                self._hanging -= 1

    # -- status callbacks -----------------------------------------------------------------

    def signed_callback(
        self,
        record: RecordedRequest,
        status: str,
        error_code: int | None = None,
        url: str | None = None,
    ) -> tuple[str, dict[str, str], str]:
        """(url, params, X-Twilio-Signature) for the callback Twilio would send."""
        if status not in CALLBACK_STATUSES:
            raise ValueError(f"status must be one of {CALLBACK_STATUSES}")
        target = url or record.status_callback
        if not target or not record.message_sid:
            raise ValueError("request had no StatusCallback, or was never accepted")
        params = {
            "AccountSid": record.account_sid,
            "ApiVersion": API_VERSION,
            "From": record.from_ or "",
            "MessageSid": record.message_sid,
            "MessageStatus": status,
            "SmsSid": record.message_sid,
            "SmsStatus": status,
            "To": record.to or "",
        }
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        signature = RequestValidator(self.auth_token).compute_signature(target, params)
        return target, params, signature

    async def post_status(
        self,
        record: RecordedRequest,
        status: str,
        *,
        error_code: int | None = None,
        url: str | None = None,
        tamper: Mapping[str, str] | None = None,
    ) -> PostedCallback:
        """POST a signed callback; ``tamper`` changes params after signing (must be refused)."""
        target, params, signature = self.signed_callback(record, status, error_code, url)
        params = {**params, **(tamper or {})}
        client_timeout = aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.post(target, data=params, headers={"X-Twilio-Signature": signature}) as resp,
        ):
            await resp.read()
            return PostedCallback(target, params, signature, resp.status)

    def post_status_sync(
        self,
        record: RecordedRequest,
        status: str,
        *,
        error_code: int | None = None,
        url: str | None = None,
        tamper: Mapping[str, str] | None = None,
    ) -> PostedCallback:
        """post_status() from a test thread while the fake serves from run_in_thread()."""
        if self._loop is None or self._thread is None:
            raise RuntimeError("post_status_sync needs run_in_thread(); await post_status()")
        coro = self.post_status(record, status, error_code=error_code, url=url, tamper=tamper)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALLBACK_TIMEOUT_S + 5)


def _error_response(status: int, code: int | None, message: str) -> web.Response:
    payload = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(payload, status=status)


def _message_resource(
    account_sid: str, message_sid: str, form: Mapping[str, str]
) -> dict[str, object]:
    """The JSON Twilio returns for a created message (fields MessageInstance reads)."""
    now = format_datetime(datetime.now(UTC), usegmt=True)
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{message_sid}"
    body = form.get("Body", "")
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From"),
        "messaging_service_sid": form.get("MessagingServiceSid"),
        "num_media": "0",
        "num_segments": str(max(1, -(-len(body) // 160))),
        "price": None,
        "price_unit": "USD",
        "sid": message_sid,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": form.get("To"),
        "uri": f"{uri}.json",
    }
