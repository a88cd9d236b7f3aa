"""The duty desk's "who was told" (alerts/notification_views.py and
streams/web/episode_notifications.py): what dispatch writes per episode, and what a key sees."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from alerts import notification_views as nv
from alerts.delivery_log import after_attempt, apply_receipt
from alerts.notifiers.base import Outcome, SendResult
from config.policy import Person
from schemas.alerts import Channel
from streams.web.episode_notifications import display_names, notifications
from tests.unit.test_delivery_log import ALERT, POLICY, SMS, T0

EMAIL = SMS.model_copy(
    update={
        "notification_id": "ABCD23:high-t0:pl-1:email",
        "channel": Channel.EMAIL,
        "address": "pl@example.org",
        "role": "police_liaison",
    }
)
PEOPLE = {"pl-1": Person(display_name="Police liaison", phone="+447700900105", email="pl@x.org")}


def sent(n=SMS, at=T0):  # type: ignore[no-untyped-def]
    ok = SendResult(Outcome.DELIVERED, provider_message_id="SM1")
    return after_attempt(n, ALERT, None, ok, now=at, policy=POLICY, rng=random.Random(0))


def test_the_view_holds_no_address_body_or_provider_error() -> None:
    failed = after_attempt(
        SMS,
        ALERT,
        None,
        SendResult(Outcome.PERMANENT, error="The 'To' number +447700900105 is not valid"),
        now=T0,
        policy=POLICY,
        rng=random.Random(0),
    )
    raw = nv.with_view(None, nv.view_of(failed))
    assert raw is not None
    assert b"+44" not in raw and b"text" not in raw and b"not valid" not in raw
    (view,) = nv.decode(raw)
    assert (view.status, view.recipient_id, view.step_id) == ("failed", "pl-1", "high-t0")


def test_a_receipt_replaces_the_entry_and_a_replay_changes_nothing() -> None:
    first = sent()
    raw = nv.with_view(nv.with_view(None, nv.view_of(first)), nv.view_of(sent(EMAIL)))
    assert raw is not None and len(nv.decode(raw)) == 2
    assert nv.with_view(raw, nv.view_of(first)) is None, "a replayed write is not written again"
    delivered = apply_receipt(first, "delivered", None, T0 + timedelta(seconds=5))
    assert delivered is not None
    after = nv.with_view(raw, nv.view_of(delivered))
    assert after is not None
    statuses = {v.channel: v.status for v in nv.decode(after)}
    assert statuses == {Channel.SMS: "delivered", Channel.EMAIL: "sent"}


@given(st.permutations(range(4)))
def test_the_entry_does_not_depend_on_the_order_of_writes(order: list[int]) -> None:
    deliveries = [
        sent(SMS.model_copy(update={"notification_id": f"ABCD23:s{i}:pl-1:sms"}), T0 + timedelta(i))
        for i in range(4)
    ]
    raw: bytes | None = None
    for i in order:
        raw = nv.with_view(raw, nv.view_of(deliveries[i])) or raw
    assert [v.step_id for v in nv.decode(raw)] == ["high-t0"] * 4
    assert [v.notification_id for v in nv.decode(raw)] == [
        f"ABCD23:s{i}:pl-1:sms" for i in range(4)
    ]


def test_deleting_the_last_entry_deletes_the_key() -> None:
    raw = nv.with_view(None, nv.view_of(sent()))
    assert nv.without(raw, "ABCD23:other:pl-1:sms") is None
    assert nv.without(raw, SMS.notification_id) == b""


def test_unreadable_entries_are_left_out_not_raised() -> None:
    good = nv.with_view(None, nv.view_of(sent()))
    assert good is not None
    assert nv.decode(b"\xff\xfe") == []
    assert nv.decode(b'{"a": 1}') == []
    mixed = b"[" + good[1:-1] + b',{"notification_id": 3}, "x"]'
    assert [v.notification_id for v in nv.decode(mixed)] == [SMS.notification_id]


def test_addresses_only_for_keys_with_the_contacts_scope() -> None:
    raw = nv.with_view(nv.with_view(None, nv.view_of(sent())), nv.view_of(sent(EMAIL)))
    plain = notifications(raw, PEOPLE, contacts=False)
    assert all("address" not in row for row in plain)
    assert {row["role"] for row in plain} == {None, "police_liaison"}
    with_contacts = {r["channel"]: r["address"] for r in notifications(raw, PEOPLE, contacts=True)}
    assert with_contacts == {"sms": "+447700900105", "email": "pl@x.org"}
    assert notifications(raw, {}, contacts=True)[0]["address"] is None  # left the rota


def test_people_are_shown_by_display_name_or_their_id_once_left_the_rota() -> None:
    assert display_names(["pl-1", "gone", "pl-1"], PEOPLE) == {
        "gone": "gone",
        "pl-1": "Police liaison",
    }
