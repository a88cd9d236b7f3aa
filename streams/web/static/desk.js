// Duty desk for missing-alerts: the open episodes of the key's authorities, most urgent first,
// one episode's timeline and who was told, and the duty team's actions, all through the /v1 API.
//
// - The team's API key lives in this tab's sessionStorage only and is removed on sign-out.
// - The list is polled every POLL_MS with If-None-Match: an unchanged list is an empty 304.
//   The open episode is polled too, so delivery receipts and acknowledgements show as they come.
// - Every action carries an Idempotency-Key, reused when a send ended without a definite answer.
// - Times are shown in Europe/London, whatever the browser's zone; sent as UTC instants.
(() => {
  "use strict";

  const KEY_STORE = "missing-alerts.desk.api-key";
  const POLL_MS = 3000;
  const ZONE = "Europe/London";
  const TIER_RANK = { high: 0, medium: 1, standard: 2 };
  const CODE_RE = /^[A-Za-z0-9]{4,12}$/;

  const page = window.MissingAlertsPage; // streams/web/static/common.js
  const { $, $$, el, callApi, localNow, clearErrors, showFieldError, errorLinks } = page;
  const keys = page.keyStore(KEY_STORE);

  const signin = $("#signin");
  const signinForm = $("#signin-form");
  const keyInput = $("#api-key");
  const desk = $("#desk");
  const columns = $(".desk-columns");
  const list = $("#episodes");
  const panel = $("#episode-panel");
  const outcome = $("#action-outcome");

  const view = {
    etag: null, // of the list as last shown
    seen: null, // codes on the list at the last answer (null before the first)
    code: null, // the episode open in the panel
    episode: null, // its last answer
    listTimer: null,
    episodeTimer: null,
  };
  const pending = new Map(); // form id -> {key, body} of sends without a definite answer

  // -- time -----------------------------------------------------------------------------------

  const dayTime = new Intl.DateTimeFormat("en-GB", {
    timeZone: ZONE,
    weekday: "short",
    day: "2-digit",
    month: "short",
    hour: "2-digit",
    minute: "2-digit",
  });
  const clock = new Intl.DateTimeFormat("en-GB", {
    timeZone: ZONE,
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });

  function when(iso) {
    return iso ? dayTime.format(new Date(iso)) : "";
  }

  function duration(ms) {
    const minutes = Math.max(0, Math.floor(ms / 60000));
    const days = Math.floor(minutes / 1440);
    const hours = Math.floor((minutes % 1440) / 60);
    const mins = minutes % 60;
    if (days) {
      return `${days} d ${hours} h`;
    }
    return hours ? `${hours} h ${mins} min` : `${mins} min`;
  }

  // datetime-local (the browser's local wall time) -> a UTC instant.
  function instant(local) {
    const d = new Date(local);
    return Number.isNaN(d.getTime()) ? null : d.toISOString();
  }

  function londonToday() {
    return new Intl.DateTimeFormat("en-CA", { timeZone: ZONE }).format(new Date());
  }

  // -- the list -------------------------------------------------------------------------------

  function overdue(summary, now) {
    return Boolean(summary.next_due_at) && Date.parse(summary.next_due_at) < now;
  }

  // High risk first, then an overdue step, then the longest missing (the API's order refined
  // by what only the clock knows).
  function urgency(a, b, now) {
    const rank = (TIER_RANK[a.tier] ?? 3) - (TIER_RANK[b.tier] ?? 3);
    if (rank) {
      return rank;
    }
    const late = Number(overdue(b, now)) - Number(overdue(a, now));
    return late || Date.parse(a.last_seen_at) - Date.parse(b.last_seen_at);
  }

  function row(summary, now, fresh) {
    const item = el("li", { class: `episode-row tier-${summary.tier}${fresh ? " fresh" : ""}` });
    const button = el("button", { type: "button", class: "episode-open", "data-code": summary.episode_code });
    const top = el("span", { class: "row-top" });
    top.append(
      el("span", { class: `badge badge-${summary.tier}` }, summary.tier.toUpperCase()),
      el("strong", { class: "row-code" }, summary.episode_code),
      el("span", {}, `${summary.initials || "?"} · ${summary.category}`),
    );
    const missing = el("span", { class: "row-line" },
      `${summary.category === "away" ? "Away" : "Missing"} ${duration(now - Date.parse(summary.last_seen_at))}`
        + ` · last seen ${when(summary.last_seen_at)}`);
    const next = el("span", { class: "row-line" });
    if (summary.next_step && summary.next_due_at) {
      const late = overdue(summary, now);
      next.className = late ? "row-line overdue" : "row-line";
      next.textContent = late
        ? `Overdue: ${summary.next_step} due ${when(summary.next_due_at)}`
        : `Next: ${summary.next_step} at ${when(summary.next_due_at)}`;
    } else {
      next.textContent = "No further steps";
    }
    const acks = Object.entries(summary.acknowledged_by || {});
    const ack = el("span", { class: acks.length ? "row-line acked" : "row-line unacked" },
      acks.length ? `Acknowledged ${when(acks.map(([, at]) => at).sort()[0])}` : "Not acknowledged");
    button.append(top, missing, next, ack);
    item.append(button);
    return item;
  }

  function renderList(episodes) {
    const now = Date.now();
    const open = episodes.filter((e) => e.status === "open").sort((a, b) => urgency(a, b, now));
    const fresh = view.seen ? open.filter((e) => !view.seen.has(e.episode_code)) : [];
    list.textContent = "";
    for (const summary of open) {
      list.append(row(summary, now, fresh.includes(summary)));
    }
    $("#open-count").textContent = `(${open.length})`;
    $("#list-empty").hidden = open.length > 0;
    if (fresh.length) {
      const high = fresh.filter((e) => e.tier === "high").length;
      const what = high ? `${high} new high-risk` : `${fresh.length} new`;
      $("#list-state").textContent = `${what} episode${fresh.length === 1 ? "" : "s"}: `
        + fresh.map((e) => e.episode_code).join(", ");
    }
    view.seen = new Set(open.map((e) => e.episode_code));
  }

  async function refreshList() {
    const apiKey = keys.get();
    if (!apiKey) {
      return;
    }
    const extra = view.etag ? { "If-None-Match": view.etag } : {};
    let res = null;
    try {
      res = await callApi("GET", "/v1/episodes?status=open&limit=200", apiKey, undefined, null, extra);
    } catch (_err) {
      res = null;
    }
    const error = $("#list-error");
    if (res && res.status === 401) {
      signOut("The key is no longer accepted. Sign in again.");
      return;
    }
    if (res === null || (res.status !== 200 && res.status !== 304)) {
      error.textContent = "The list could not be refreshed; it is retried every few seconds. "
        + "Alerts still go by SMS and email.";
      error.hidden = false;
      return;
    }
    error.hidden = true;
    if (res.status === 200 && res.data && Array.isArray(res.data.episodes)) {
      view.etag = res.headers.get("ETag");
      renderList(res.data.episodes);
    }
    const state = $("#list-state");
    if (!/new/.test(state.textContent) || res.status === 304) {
      state.textContent = `Updated ${clock.format(new Date())}`;
    }
  }

  // -- one episode ----------------------------------------------------------------------------

  function fact(dl, term, value) {
    if (value) {
      dl.append(el("dt", {}, term), el("dd", {}, value));
    }
  }

  const STEP_WORDS = {
    last_seen: "Last seen",
    reported: "Reported",
    reported_again: "Reported again",
    updated: "Information added",
    step_fired: "Alert step",
    acknowledged: "Acknowledged",
    returned: "Returned",
    cancelled: "Cancelled",
    return_interview: "Return home interview",
  };

  function timelineText(entry, people) {
    const words = STEP_WORDS[entry.what] || entry.what;
    const parts = [words];
    if (entry.step_id) {
      parts.push(entry.step_id);
    }
    if (entry.by) {
      parts.push(`by ${people[entry.by] || entry.by}`);
    }
    if (entry.category) {
      parts.push(entry.category);
    }
    if (entry.flags && entry.flags.length) {
      parts.push(entry.flags.join(", ").replace(/_/g, " "));
    }
    if (entry.immediate_danger) {
      parts.push("IMMEDIATE DANGER");
    }
    if (entry.how) {
      parts.push(entry.how);
    }
    if (entry.reason) {
      parts.push(entry.reason.replace(/_/g, " "));
    }
    if (entry.offered_on) {
      parts.push(`offered ${entry.offered_on}${entry.accepted === true ? ", accepted" : ""}`);
    }
    return parts.join(" · ");
  }

  function renderTold(rows, people) {
    const body = $("#told tbody");
    body.textContent = "";
    for (const n of rows) {
      const tr = el("tr", { "data-notification": n.notification_id, "data-status": n.status });
      const who = el("td", {}, people[n.recipient_id] || n.recipient_id);
      if (n.role) {
        who.append(el("span", { class: "role" }, ` (${n.role.replace(/_/g, " ")})`));
      }
      if (n.address) {
        who.append(el("span", { class: "address" }, ` ${n.address}`));
      }
      tr.append(
        who,
        el("td", {}, n.step_id),
        el("td", {}, n.channel === "sms" ? "SMS" : "Email"),
        el("td", { class: `status status-${n.status}` }, n.status),
        el("td", {}, when(n.updated_at)),
      );
      body.append(tr);
    }
    $("#told-empty").hidden = rows.length > 0;
    $("#told").hidden = rows.length === 0;
  }

  function renderAckChoices(ep) {
    const select = $("#ack-as");
    const previous = select.value;
    select.textContent = "";
    select.append(el("option", { value: "" }, "Me (this key's responder)"));
    const told = [...new Set((ep.notifications || []).map((n) => n.recipient_id))];
    for (const pid of told) {
      select.append(el("option", { value: pid }, ep.people[pid] || pid));
    }
    if ([...select.options].some((o) => o.value === previous)) {
      select.value = previous;
    }
  }

  function renderEpisode(ep) {
    $("#ep-code").textContent = ep.episode_code;
    const dl = $("#ep-facts");
    dl.textContent = "";
    const status = ep.status === "open" ? (ep.category === "away" ? "Open: away" : "Open: missing")
      : ep.status === "cancelled" ? `Cancelled (${String(ep.cancel_reason).replace(/_/g, " ")})`
        : "Closed: returned";
    fact(dl, "Status", status);
    fact(dl, "Risk", String(ep.tier).toUpperCase());
    fact(dl, "Child", `${ep.initials || "?"} (${ep.child_ref})`);
    fact(dl, "Last seen", when(ep.last_seen_at));
    fact(dl, "Reported", when(ep.reported_at));
    fact(dl, "Returned", when(ep.returned_at));
    const acks = Object.entries(ep.acknowledged_by || {})
      .map(([pid, at]) => `${ep.people[pid] || pid}, ${when(at)}`);
    fact(dl, "Acknowledged", acks.join("; ") || "Not yet");
    const offered = { open: ["acknowledge", "update", "return", "cancel"], closed: ["rhi", "cancel"] };
    for (const form of $$(".desk-action")) {
      (form.closest("details") || form).hidden = !(offered[ep.status] || []).includes(form.dataset.action);
    }
    $("#ep-actions").hidden = ep.status !== "open";
    $("#ep-more").hidden = ep.status === "cancelled";
    renderAckChoices(ep);
    renderTold(ep.notifications || [], ep.people || {});
    const tl = $("#timeline");
    tl.textContent = "";
    for (const entry of ep.timeline || []) {
      const li = el("li", { "data-what": entry.what });
      li.append(el("time", {}, entry.at ? when(entry.at) : ""), " ", timelineText(entry, ep.people || {}));
      tl.append(li);
    }
  }

  async function refreshEpisode() {
    const code = view.code;
    const apiKey = keys.get();
    if (!code || !apiKey) {
      return;
    }
    let res = null;
    try {
      res = await callApi("GET", `/v1/episodes/${encodeURIComponent(code)}`, apiKey);
    } catch (_err) {
      res = null;
    }
    if (code !== view.code) {
      return; // another episode was opened meanwhile
    }
    const error = $("#ep-error");
    if (res && res.status === 200 && res.data) {
      error.hidden = true;
      view.episode = res.data;
      renderEpisode(res.data);
      return;
    }
    error.textContent = res === null || res.status >= 500
      ? "The episode could not be loaded just now; retrying."
      : res.status === 404 ? "No such episode (yet): retrying." : `Refused (${res.status}).`;
    error.hidden = false;
  }

  function openEpisode(code) {
    if (!CODE_RE.test(code)) {
      return;
    }
    view.code = code;
    view.episode = null;
    outcome.hidden = true;
    pending.clear();
    for (const more of $$("details.desk-more")) {
      more.open = false;
    }
    for (const form of $$(".desk-action")) {
      form.reset();
      clearErrors(form);
      setDefaults(form);
    }
    $("#ep-facts").textContent = "";
    $("#timeline").textContent = "";
    $("#told tbody").textContent = "";
    $("#ep-code").textContent = code;
    panel.hidden = false;
    columns.classList.add("showing-episode");
    window.clearInterval(view.episodeTimer);
    view.episodeTimer = window.setInterval(refreshEpisode, POLL_MS);
    refreshEpisode();
    $("#episode-title").setAttribute("tabindex", "-1");
    $("#episode-title").focus();
  }

  function closeEpisode() {
    window.clearInterval(view.episodeTimer);
    view.code = null;
    panel.hidden = true;
    columns.classList.remove("showing-episode");
    refreshList();
  }

  // -- actions --------------------------------------------------------------------------------

  const REPORTER = { role: "social_worker" };

  function value(form, name) {
    const control = form.elements.namedItem(name);
    return control ? String(control.value || "").trim() : "";
  }

  // Each action: where it goes and its body, or field errors [[field, message], ...].
  const ACTIONS = {
    acknowledge(form, ep) {
      const who = value(form, "recipient_id");
      return {
        path: `/v1/episodes/${ep.episode_code}/acknowledgements`,
        body: who ? { recipient_id: who } : {},
        done: "Acknowledged. Steps that repeat until someone responds have stopped.",
      };
    },
    update(form, ep) {
      const kind = value(form, "kind");
      const body = { kind, reporter: REPORTER };
      if (kind === "category") {
        body.category = value(form, "category");
      }
      if (kind === "risk") {
        body.added_flags = $$("input[name=added_flags]:checked", form).map((i) => i.value);
        body.immediate_danger = $("input[name=immediate_danger]", form).checked;
        if (!body.added_flags.length && !body.immediate_danger) {
          return { errors: [["added_flags", "Choose at least one new concern."]] };
        }
      }
      const note = value(form, "note");
      if (note) {
        body.note = note;
      }
      return {
        path: `/v1/episodes/${ep.episode_code}/updates`,
        body,
        done: "Information added to the episode.",
      };
    },
    return(form, ep) {
      const at = instant(value(form, "returned_at"));
      if (!at) {
        return { errors: [["returned_at", "Enter the date and time the child came back."]] };
      }
      return {
        path: "/v1/returns",
        body: {
          child_ref: ep.child_ref,
          episode_code: ep.episode_code,
          returned_at: at,
          how: value(form, "how"),
          reporter: REPORTER,
        },
        done: "Return recorded. The team is told, and the return home interview is due.",
      };
    },
    rhi(form, ep) {
      const offered = value(form, "offered_on");
      if (!/^\d{4}-\d{2}-\d{2}$/.test(offered)) {
        return { errors: [["offered_on", "Enter the date the interview was offered."]] };
      }
      const accepted = value(form, "accepted");
      const body = { offered_on: offered };
      if (accepted) {
        body.accepted = accepted === "true";
      }
      return {
        path: `/v1/episodes/${ep.episode_code}/return-interview`,
        body,
        done: "Return home interview recorded.",
      };
    },
    cancel(form, ep) {
      if (!$("#cancel-confirm").checked) {
        return { errors: [["confirm", "Tick the box to confirm the report is false."]] };
      }
      const body = { reason: value(form, "reason"), reporter: REPORTER };
      const note = value(form, "note");
      if (note) {
        body.note = note;
      }
      return {
        path: `/v1/episodes/${ep.episode_code}/cancellation`,
        body,
        done: "Report cancelled. Everyone already told is being told.",
      };
    },
  };

  function showOutcome(kind, title, lines) {
    outcome.className = `outcome outcome-${kind}`;
    outcome.setAttribute("role", kind === "success" ? "status" : "alert");
    outcome.textContent = "";
    outcome.append(el("h4", { class: "outcome-title" }, title));
    for (const line of lines) {
      outcome.append(typeof line === "string" ? el("p", {}, line) : line);
    }
    outcome.hidden = false;
    outcome.scrollIntoView({ block: "nearest" });
  }

  function fieldErrors(form, errors) {
    return errors.map(([name, message]) => {
      const field = $(`.field[data-field="${name}"]`, form);
      return { control: field ? showFieldError(field, message) : null, message };
    });
  }

  function refusal(res) {
    const data = res.data || {};
    if (res.status === 401) {
      return ["The key was not accepted. Sign out and sign in again."];
    }
    if (res.status === 403) {
      return ["This key does not allow that action. Ask for a duty desk key with that scope."];
    }
    const detail = typeof data.detail === "string" ? data.detail : data.error || "";
    return [`Refused (${res.status}${detail ? `: ${detail}` : ""}).`];
  }

  async function onAction(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const button = $("button[type=submit]", form);
    const ep = view.episode;
    const apiKey = keys.get();
    if (button.disabled || !ep || !apiKey) {
      return;
    }
    clearErrors(form);
    outcome.hidden = true;
    const plan = ACTIONS[form.dataset.action](form, ep);
    if (plan.errors) {
      showOutcome("error", "Not sent – check the form", [errorLinks(fieldErrors(form, plan.errors))]);
      return;
    }
    const res = await page.sendOnce(pending, form, plan.path, apiKey, JSON.stringify(plan.body));
    if (res === null || res.status >= 500 || res.status === 429) {
      showOutcome("retry", "Not sent – please try again", [
        "The alerting system did not confirm it. Press the button again: it is recorded once.",
      ]);
      return;
    }
    if (res.status === 202 || res.status === 200) {
      showOutcome("success", plan.done, []);
      form.reset();
      setDefaults(form);
      refreshEpisode();
      return;
    }
    if (res.status === 422 && res.data && Array.isArray(res.data.detail)) {
      const errors = res.data.detail.map((d) => [String(d.field || "").split(".")[0], String(d.message)]);
      showOutcome("error", "Not sent – check the form", [errorLinks(fieldErrors(form, errors))]);
      return;
    }
    showOutcome("error", "Not sent", refusal(res));
  }

  function setDefaults(form) {
    for (const input of $$("input[data-now]", form)) {
      input.value = localNow();
    }
    for (const input of $$("input[data-today]", form)) {
      input.value = londonToday();
    }
    const kind = $("select[name=kind]", form);
    if (kind) {
      showKindFields(form, kind.value);
    }
  }

  function showKindFields(form, kind) {
    for (const field of $$("[data-for-kind]", form)) {
      field.hidden = field.dataset.forKind !== kind;
    }
  }

  // -- sign in / out --------------------------------------------------------------------------

  function showSignedIn() {
    signin.hidden = true;
    desk.hidden = false;
    for (const node of $$(".tz")) {
      node.textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "local";
    }
    window.clearInterval(view.listTimer);
    view.listTimer = window.setInterval(refreshList, POLL_MS);
    refreshList();
  }

  function signOut(message) {
    keys.forget();
    window.clearInterval(view.listTimer);
    window.clearInterval(view.episodeTimer);
    Object.assign(view, { etag: null, seen: null, code: null, episode: null });
    list.textContent = "";
    panel.hidden = true;
    desk.hidden = true;
    signin.hidden = false;
    if (message) {
      showFieldError($(".field", signinForm), message);
    }
    keyInput.focus();
  }

  async function onSignIn(event) {
    event.preventDefault();
    const probe = (key) => callApi("GET", "/v1/episodes?limit=1", key);
    const status = await page.signIn(signinForm, keyInput, keys, probe, {
      empty: "Paste your team's API key.",
      forbidden: "Not authorised: that key cannot read episodes. Ask for a duty desk key.",
      unchecked: "The key could not be checked just now. Try again in a moment.",
    });
    if (status !== null) {
      showSignedIn();
    }
  }

  signinForm.addEventListener("submit", onSignIn);
  $("#signout").addEventListener("click", () => signOut(null));
  $("#back").addEventListener("click", closeEpisode);
  list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-code]");
    if (button) {
      openEpisode(button.dataset.code);
    }
  });
  for (const form of $$(".desk-action")) {
    form.addEventListener("submit", onAction);
    const kind = $("select[name=kind]", form);
    if (kind) {
      kind.addEventListener("change", () => showKindFields(form, kind.value));
    }
  }
  if (keys.get()) {
    showSignedIn();
  } else {
    signin.hidden = false;
  }
})();
