"""Who may do what to which child, as pure functions of the key and the request. The API
(streams/web/api.py) turns their ApiError into a JSON problem response."""

from __future__ import annotations

import re
from typing import Any, Final

from schemas.common import authority_of, scoped_child_ref, split_child_ref
from streams.web.auth import ApiKey


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid", [{"field": field, "message": message}])


FORBIDDEN_CHILD: Final = "this child is outside the key's local authorities"


def child_in_scope(
    key: ApiKey, given: str, *, authority: str | None, default_authority: str
) -> str:
    """The child a request means, as the system spells it (schemas/common.py): a bare
    reference belongs to the key's own authority (or ``authority``, a profile's), and the key
    must serve that authority. Another authority's records can never stand in the way of a
    report: its children are different children."""
    ref, named = split_child_ref(given)
    if named is not None and authority is not None and named != authority:
        raise invalid("local_authority", "differs from the authority the child reference names")
    chosen = named or authority
    if chosen is None:
        if len(key.local_authorities) != 1:
            raise invalid(
                "child_ref",
                "this key serves several local authorities: write '<reference>@<authority>'",
            )
        (chosen,) = key.local_authorities
    if chosen not in key.local_authorities:
        raise ApiError(403, "forbidden", FORBIDDEN_CHILD)
    return scoped_child_ref(ref, chosen, default_authority)


def check_child(key: ApiKey, child_ref: str, default_authority: str) -> None:
    """A child named by an episode code must belong to one of the key's authorities."""
    if authority_of(child_ref, default_authority) not in key.local_authorities:
        raise ApiError(403, "forbidden", FORBIDDEN_CHILD)


def acknowledger(key: ApiKey, given: Any, notified: list[str]) -> dict[str, Any]:
    """In whose name an API acknowledgement is made: someone who was messaged for the episode,
    or the key's own responder. Anything else would let a typo, or anyone with a key, silence
    the escalation of a missing child."""
    person = given if isinstance(given, str) and given else key.responder_id
    if person is None:
        raise invalid("recipient_id", "required: this key names no responder")
    if person == key.responder_id:
        basis = "named_responder"
    elif person in notified:
        basis = "notified"
    else:
        raise invalid(
            "recipient_id",
            "was not sent a message for this episode and is not this key's responder",
        )
    return {"recipient_id": person, "basis": basis, "api_key_id": key.id}


_IDEMPOTENCY_KEY: Final = re.compile(r"^[\x21-\x7e]{1,200}$")
EPISODE_CODE: Final = re.compile(r"^[A-Za-z0-9]{4,12}$")


def idempotency_key(header: str | None) -> str | None:
    """Printable ASCII only: a header that was not UTF-8 arrives as surrogate escapes, which
    must be a 422, not an encoding error deep in the id derivation."""
    if header is None:
        return None
    if not _IDEMPOTENCY_KEY.match(header):
        raise invalid("Idempotency-Key", "1-200 printable ASCII characters")
    return header
