"""Responder-facing endpoints: episode state, one-click acknowledgement links, SMS replies.

All three acknowledgement paths (API, link, SMS reply) end as the same Acknowledgement event on
Kafka, with an event id derived from what was received, so a retried link click or a Twilio
webhook retry acknowledges once.
"""

from __future__ import annotations

import html
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import aiohttp
import faust

from alerts import notified as notified_codec
from alerts.ack_links import parse_sms_ack, verify_link
from alerts.receipts import signature_valid
from config.policy import Rota
from schemas.events import Acknowledgement
from streams.engine.contract import fetch_state
from streams.episodes.codec import decode_state
from streams.web.access import ApiError
from streams.web.api import Api, problem
from streams.web.auth import ApiKey, Scope
from streams.web.episode_notifications import display_names, notifications
from streams.web.episode_view import episode_view, find_episode
from streams.web.link_pages import INVALID_LINK, html_response, page
from streams.worker.wiring import Resources, Wiring
from telemetry.logging import get_logger

log = get_logger("missing_alerts.web.responders")
INBOUND_SMS_PATH = "/v1/webhooks/twilio/inbound"


def _twiml(message: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
        f"{html.escape(message)}</Message></Response>"
    )


def _confirm_page(code: str, token: str) -> str:
    button = (
        f'<form method=post action="/a/{html.escape(token)}">'
        "<button type=submit style='font-size:1.2em;padding:.6em 1.2em'>"
        f"Acknowledge episode {html.escape(code)}</button></form>"
    )
    text = (
        f"Press the button to record that you have seen episode {code} and are responding. "
        "Unacknowledged steps of its escalation then stop."
    )
    return page(f"Acknowledge episode {code}?", text, button)


def person_by_phone(rota: Rota, phone: str) -> str | None:
    """Looked up per reply, from the rota in use now (it can be reloaded: streams/reload.py)."""
    return next((pid for pid, p in rota.people.items() if phone and p.phone == phone), None)


def wire_responders(w: Wiring, r: Resources, api: Api) -> None:
    settings = r.settings
    engine = w.engine_handle()
    twilio_token = (
        settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    )

    @w.app.page("/v1/episodes/{code}")
    class EpisodeState(faust.web.View):  # type: ignore[misc]
        async def get(self, request: Any, code: str) -> Any:
            try:
                key = api.authenticate(request, Scope.EPISODES_READ)
                child = api.child_for_code(code)
                api.check_child(key, child)
            except ApiError as exc:
                return problem(self, exc)
            # The state lives in the engine holding the child's partition: ask the local engine
            # process, which answers or forwards once to the owner (streams/engine/process.py).
            try:
                status, body = await fetch_state(
                    w.app.http_client, engine.local_url, child, settings.link_key
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("engine state not reachable", error=type(exc).__name__)
                status, body = 503, b""
            if status == 503:
                return problem(
                    self,
                    ApiError(
                        503,
                        "rebalancing",
                        "episode state is moving between workers",
                        {"Retry-After": "1"},
                    ),
                )
            state = decode_state(body) if status == 200 else None
            episode = find_episode(state, code.upper()) if state else None
            if state is None or episode is None:
                return self.json(
                    {"error": "not_found", "detail": "episode not on record"}, status=404
                )
            return self.json(
                self._with_notifications(episode_view(state, episode), key),
                headers={"Cache-Control": "no-store"},
            )

        def _with_notifications(self, view: dict[str, Any], key: ApiKey) -> dict[str, Any]:
            code = str(view["episode_code"])
            people = r.policy.rota.people  # the rota in use now (streams/reload.py)
            told = notifications(
                w.episode_notifications.get(code.encode()),
                people,
                contacts=Scope.CONTACTS_READ in key.scopes,
            )
            named = [n["recipient_id"] for n in told] + list(view["acknowledged_by"])
            return {**view, "notifications": told, "people": display_names(named, people)}

    @w.app.page("/a/{token}")
    class AckLink(faust.web.View):  # type: ignore[misc]
        """GET shows what the link is for and a button; only the POST from that button
        acknowledges. Mail scanners and link previews fetch links (GET, HEAD) without a person
        reading them: if that acknowledged, a scanner could silence a missing child's
        escalation."""

        async def get(self, request: Any, token: str) -> Any:
            claim = verify_link(settings.link_key, token, r.clock.now())
            if claim is None:
                return html_response(self, INVALID_LINK, status=403)
            if w.episode_codes.get(claim.episode_code.encode()) is None:
                return html_response(self, page("Unknown episode", "No such episode."), status=404)
            return html_response(self, _confirm_page(claim.episode_code, token))

        async def post(self, request: Any, token: str) -> Any:
            claim = verify_link(settings.link_key, token, r.clock.now())
            if claim is None:
                return html_response(self, INVALID_LINK, status=403)
            raw = w.episode_codes.get(claim.episode_code.encode())
            if raw is None:
                return html_response(self, page("Unknown episode", "No such episode."), status=404)
            ack = Acknowledgement(
                event_id=uuid5(NAMESPACE_URL, f"missing-alerts:link:{token}"),
                occurred_at=r.clock.now(),
                child_ref=bytes(raw).decode(),
                episode_code=claim.episode_code,
                recipient_id=claim.recipient_id,
                via="link",
            )
            try:
                await api.produce(w.events, ack.child_ref, ack)
            except ApiError:
                return html_response(
                    self, page("Try again", "Could not record it just now."), status=503
                )
            log.info("acknowledged by link", episode_code=ack.episode_code, child_ref=ack.child_ref)
            text = f"Episode {claim.episode_code} is acknowledged. Thank you."
            return html_response(self, page("Acknowledged", text))

    @w.app.page(INBOUND_SMS_PATH)
    class InboundSms(faust.web.View):  # type: ignore[misc]
        async def post(self, request: Any) -> Any:
            if twilio_token is None:
                return self.text("twilio is not configured", status=404)
            form = await request.post()
            params = {k: str(v) for k, v in form.items()}
            url = settings.public_base_url.rstrip("/") + request.raw_path
            if not signature_valid(
                twilio_token, url, params, request.headers.get("X-Twilio-Signature", "")
            ):
                log.warning("inbound sms refused: bad signature")
                return self.text("invalid signature", status=403)
            reply = await self._acknowledge(params)
            return self.text(_twiml(reply), content_type="application/xml")

        async def _acknowledge(self, params: dict[str, str]) -> str:
            code = parse_sms_ack(params.get("Body", ""))
            if code is None:
                return "To acknowledge, reply ACK followed by the episode code, e.g. ACK K7Q2MD."
            person = person_by_phone(r.policy.rota, params.get("From", ""))
            notified = notified_codec.decode(w.notified.get(code.encode())).people
            if person is None or person not in notified:
                log.warning("sms ack refused: sender not notified", episode_code=code)
                return f"Episode {code}: this number was not alerted for it; nothing recorded."
            raw = w.episode_codes.get(code.encode())
            if raw is None:
                return f"Episode {code} is not known."
            sid = params.get("MessageSid") or params.get("SmsSid") or ""
            ack = Acknowledgement(
                event_id=uuid5(NAMESPACE_URL, f"missing-alerts:sms:{sid}:{code}:{person}"),
                occurred_at=r.clock.now(),
                child_ref=bytes(raw).decode(),
                episode_code=code,
                recipient_id=person,
                via="sms",
            )
            try:
                await api.produce(w.events, ack.child_ref, ack)
            except ApiError:
                return f"Episode {code}: could not record the acknowledgement, please try again."
            log.info("acknowledged by sms", episode_code=code, child_ref=ack.child_ref)
            return f"Acknowledged episode {code}. Thank you."

    @w.app.page("/healthz")
    class Health(faust.web.View):  # type: ignore[misc]
        async def get(self, request: Any) -> Any:
            return self.json({"status": "ok"})
