"""Property: no request shape makes the API answer 5xx (while the broker is up)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration

VALID: dict[str, dict[str, Any]] = {
    "/v1/absences": {
        "child_ref": "F1",
        "last_seen_at": "2026-11-28T10:00:00Z",
        "reporter": {"role": "carer"},
    },
    "/v1/check-ins": {
        "child_ref": "F1",
        "seen_at": "2026-11-28T10:00:00Z",
        "reporter": {"role": "carer"},
    },
    "/v1/returns": {
        "child_ref": "F1",
        "returned_at": "2026-11-28T10:00:00Z",
        "reporter": {"role": "carer"},
    },
    "/v1/episodes/ABCD23/updates": {"kind": "sighting", "reporter": {"role": "carer"}},
    "/v1/children/F1/profile": {
        "initials": "AB",
        "date_of_birth": "2012-01-01",
        "local_authority": "LA-EXAMPLE",
    },
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, str, str]:
    path = draw(st.sampled_from(sorted(VALID)))
    method = "PUT" if path.endswith("/profile") else "POST"
    body = dict(VALID[path])
    kind = draw(st.sampled_from(["mutate", "random", "bytes"]))
    if kind == "mutate":
        for key in draw(st.lists(st.sampled_from(sorted(body)), max_size=3)):
            if draw(st.booleans()):
                body.pop(key, None)
            else:
                body[key] = draw(json_values)
        raw = json.dumps(body).encode()
    elif kind == "random":
        raw = json.dumps(draw(json_values)).encode()
    else:
        raw = draw(st.binary(max_size=200))
    ctype = draw(st.sampled_from(["application/json", "application/json", "text/plain", ""]))
    key = draw(st.sampled_from(["dev-carer-LA-EXAMPLE", "dev-casesystem-LA-EXAMPLE", "nope"]))
    return method, path, raw, ctype, key


def send(base: str, method: str, path: str, raw: bytes, ctype: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    if ctype:
        headers["Content-Type"] = ctype
    req = urllib.request.Request(base + path, data=raw, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_no_request_gets_a_5xx(worker: WorkerProcess, pipeline_env: dict[str, str]) -> None:
    worker.start()
    worker.wait_ready()
    base = pipeline_env["MISSING_ALERTS_PUBLIC_BASE_URL"]
    seen: set[int] = set()

    @settings(
        max_examples=250,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(requests())
    def check(req: tuple[str, str, bytes, str, str]) -> None:
        status = send(base, *req)
        seen.add(status)
        assert status < 500, (req, status)

    check()
    assert seen & {202} and seen & {415} and seen & {422}  # the fuzz reached every branch


header_bytes = st.one_of(
    st.binary(min_size=1, max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b),
    st.sampled_from([b"\xff\xfe", b"caf\xc3\xa9", b"\xc3(", b"x" * 9000, b"[" * 500]),
)
bodies = st.one_of(
    st.just(b"[" * 60_000),
    st.just(b'{"a":' * 5000 + b"1" + b"}" * 5000),
    st.binary(max_size=300),
    st.just(json.dumps(VALID["/v1/absences"]).encode()),
)


def raw_status(port: int, head: bytes, body: bytes) -> int:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def test_no_hostile_header_or_body_gets_a_5xx(
    worker: WorkerProcess, pipeline_env: dict[str, str]
) -> None:
    """Issue #10: non-UTF-8, huge and nested values in the headers the API reads, and
    nested or binary bodies, on every write route."""
    worker.start()
    worker.wait_ready()
    port = int(pipeline_env["MISSING_ALERTS_WEB_PORT"])
    seen: set[int] = set()

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        st.sampled_from(sorted(VALID)),
        st.sampled_from([b"Authorization", b"Idempotency-Key", b"Content-Type", b"X-Other"]),
        header_bytes,
        bodies,
    )
    def check(path: str, name: bytes, value: bytes, body: bytes) -> None:
        method = b"PUT" if path.endswith("/profile") else b"POST"
        headers = {
            b"Authorization": b"Bearer dev-carer-LA-EXAMPLE",
            b"Content-Type": b"application/json",
        }
        headers[name] = value
        head = method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        head += b"".join(k + b": " + v + b"\r\n" for k, v in headers.items())
        status = raw_status(port, head, body)
        seen.add(status)
        assert status < 500, (path, name, value[:40], body[:40], status)

    check()
    assert seen & {401} and seen & {422}
