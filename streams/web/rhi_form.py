"""The return home interview form behind the link in RHI reminders and overdue notices (/r/).

The reminder's job is to get the interview recorded; an acknowledgement link on a closed
episode did nothing. The link is signed for the person and the episode (alerts/ack_links.py);
GET shows a form (offered on, accepted), only its POST records a ReturnInterviewRecorded event,
so mail scanners fetching links change nothing. The event id derives from the link and the
answers: a retried submit records once, a corrected one records the correction.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import parse_qsl
from uuid import NAMESPACE_URL, uuid5
from zoneinfo import ZoneInfo

import faust

from alerts.ack_links import verify_rhi_link
from schemas.events import ReturnInterviewRecorded
from streams.web.access import ApiError
from streams.web.api import Api
from streams.web.link_pages import INVALID_LINK, html_response, page
from streams.worker.wiring import Resources, Wiring
from telemetry.logging import get_logger

log = get_logger("missing_alerts.web.rhi_form")

_ACCEPTED = {"yes": True, "no": False, "unknown": None}
MAX_FORM_BYTES = 4096


@dataclass(frozen=True)
class Answers:
    offered_on: date
    accepted: bool | None


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


def parse_answers(form: Mapping[str, str], today: date) -> Answers | FieldProblem:
    """The form's two answers, or the first field that is wrong and why. Pure."""
    raw = form.get("offered_on", "").strip()
    try:
        offered = date.fromisoformat(raw)
    except ValueError:
        return FieldProblem("offered_on", "a date (yyyy-mm-dd) is needed")
    if offered > today:
        return FieldProblem("offered_on", "cannot be in the future")
    if offered.year < today.year - 1:
        return FieldProblem("offered_on", "is more than a year ago")
    choice = form.get("accepted", "unknown")
    if choice not in _ACCEPTED:
        return FieldProblem("accepted", "must be yes, no or unknown")
    return Answers(offered, _ACCEPTED[choice])


def form_page(code: str, token: str, today: date, problem: FieldProblem | None = None) -> str:
    warn = (
        f"<p role=alert style='color:#a00'><strong>{html.escape(problem.field)}</strong>: "
        f"{html.escape(problem.message)}</p>"
        if problem
        else ""
    )
    radios = "".join(
        f"<label style='display:block'><input type=radio name=accepted value={v}"
        f"{' checked' if v == 'unknown' else ''}> {label}</label>"
        for v, label in (("yes", "Accepted"), ("no", "Declined"), ("unknown", "Not known yet"))
    )
    form = (
        f"{warn}<form method=post action='/r/{html.escape(token)}'>"
        "<label>Offered on <input type=date name=offered_on required "
        f"max={today.isoformat()} value={today.isoformat()}></label>"
        f"<fieldset style='margin:1em 0'><legend>The child</legend>{radios}</fieldset>"
        "<button type=submit style='font-size:1.2em;padding:.6em 1.2em'>Record the interview"
        "</button></form>"
    )
    text = (
        f"Record the return home interview for episode {code}. Recording it stops the "
        "reminders; the statutory return shows it."
    )
    return page(f"Return home interview, episode {code}", text, form)


def wire_rhi_form(w: Wiring, r: Resources, api: Api) -> None:
    settings = r.settings
    zone = ZoneInfo(r.policy.rota.timezone)

    def today() -> date:
        return r.clock.now().astimezone(zone).date()

    def child_of(code: str) -> str | None:
        try:
            return api.child_for_code(code)
        except ApiError:
            return None

    @w.app.page("/r/{token}")
    class RhiForm(faust.web.View):  # type: ignore[misc]
        async def get(self, request: Any, token: str) -> Any:
            claim = verify_rhi_link(settings.link_key, token, r.clock.now())
            if claim is None:
                return html_response(self, INVALID_LINK, status=403)
            if child_of(claim.episode_code) is None:
                return html_response(self, page("Unknown episode", "No such episode."), 404)
            return html_response(self, form_page(claim.episode_code, token, today()))

        async def post(self, request: Any, token: str) -> Any:
            claim = verify_rhi_link(settings.link_key, token, r.clock.now())
            if claim is None:
                return html_response(self, INVALID_LINK, status=403)
            child = child_of(claim.episode_code)
            if child is None:
                return html_response(self, page("Unknown episode", "No such episode."), 404)
            form = await _form(request)
            if isinstance(form, FieldProblem):
                return html_response(self, page("Form not readable", form.message), 400)
            answers = parse_answers(form, today())
            if isinstance(answers, FieldProblem):
                body = form_page(claim.episode_code, token, today(), answers)
                return html_response(self, body, 400)
            return await self._record(token, claim.episode_code, child, answers)

        async def _record(self, token: str, code: str, child: str, answers: Answers) -> Any:
            seed = f"missing-alerts:rhi-link:{token}:{answers.offered_on}:{answers.accepted}"
            event = ReturnInterviewRecorded(
                event_id=uuid5(NAMESPACE_URL, seed),
                occurred_at=r.clock.now(),
                child_ref=child,
                episode_code=code,
                offered_on=answers.offered_on,
                accepted=answers.accepted,
            )
            try:
                await api.produce(w.events, child, event)
            except ApiError:
                return html_response(self, page("Try again", "Could not record it now."), 503)
            log.info("return interview recorded by link", episode_code=code, child_ref=child)
            text = f"The return home interview for episode {code} is recorded. Thank you."
            return html_response(self, page("Recorded", text))


async def _form(request: Any) -> dict[str, str] | FieldProblem:
    """The urlencoded body, bounded and decoded strictly: anything else is one clear 400."""
    if (request.content_length or 0) > MAX_FORM_BYTES:
        return FieldProblem("(body)", "the form is too large")
    body = await request.content.read(MAX_FORM_BYTES + 1)
    if len(body) > MAX_FORM_BYTES:
        return FieldProblem("(body)", "the form is too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return FieldProblem("(body)", "the form could not be read (UTF-8 expected)")
    return dict(pairs)
