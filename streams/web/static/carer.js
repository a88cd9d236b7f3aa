// Carer page for missing-alerts: report an absence, a return or a check-in through the /v1 API.
//
// - The organisation's API key lives in this tab's sessionStorage only (never localStorage,
//   never the URL) and is removed on sign-out.
// - Nothing about a child is stored: form values are read at submit time, sent, and the form is
//   cleared after a successful send.
// - Every report carries an Idempotency-Key; pressing send again after a network error or a 503
//   reuses it, so the server records the report once.
// No build step, no dependencies; loaded with `defer`, under a CSP that forbids inline script.
(() => {
  "use strict";

  const KEY_STORE = "missing-alerts.carer.api-key";
  const FUTURE_SLACK_MS = 60000;

  const page = window.MissingAlertsPage; // streams/web/static/common.js
  const { $, $$, el, callApi, localNow, clearErrors, showFieldError, errorLinks } = page;
  const keys = page.keyStore(KEY_STORE);
  const storedKey = keys.get;
  const forgetKey = keys.forget;

  const signin = $("#signin");
  const signinForm = $("#signin-form");
  const keyInput = $("#api-key");
  const reports = $("#reports");
  const outcome = $("#outcome");
  const roleSelect = $("#reporter-role");
  const forms = $$("form.report");

  // Idempotency keys of sends that ended without a definite answer: form id -> {key, body}.
  const pending = new Map();

  // -- helpers ------------------------------------------------------------------------------

  function setDefaults(form) {
    for (const input of $$("input[data-now]", form)) {
      input.value = localNow();
    }
  }

  function postJson(path, body, apiKey, idempotencyKey) {
    return callApi("POST", path, apiKey, body, idempotencyKey);
  }

  function getJson(path, apiKey) {
    return callApi("GET", path, apiKey);
  }

  // The API's messages are pydantic's; say the common ones in plain English.
  function friendly(field, message) {
    const m = String(message || "");
    if (/must not be after occurred_at/.test(m)) {
      return "The last-seen time cannot be in the future. Check the date and time.";
    }
    if (field === "child_ref") {
      if (/at least 1 character/.test(m)) {
        return "Enter the child's reference.";
      }
      if (/pattern/.test(m)) {
        return "Use only letters, numbers, dots, dashes or underscores, with no spaces.";
      }
      if (/at most/.test(m)) {
        return "The reference is too long: 64 characters at most.";
      }
    }
    if (/_at$/.test(field) && /datetime|date|time zone|timezone/i.test(m)) {
      return "Enter a date and time.";
    }
    if (/at most (\d+) characters/.test(m)) {
      return `Too long: ${m.match(/at most (\d+) characters/)[1]} characters at most.`;
    }
    return m;
  }

  // Find the .field an API field path belongs to ("reporter.role" -> the shared role select).
  function fieldFor(form, path, message) {
    let name = path;
    if ((path === "(body)" || path === "") && /last_seen_at/.test(String(message))) {
      name = "last_seen_at";
    }
    const candidates = [...$$(".field[data-field]", form), ...$$(".field[data-field]", reports)];
    let best = null;
    for (const field of candidates) {
      const f = field.dataset.field;
      const matches = name === f || name.startsWith(`${f}.`);
      if (matches && (!best || f.length > best.dataset.field.length)) {
        best = field;
      }
    }
    return best;
  }

  // -- outcome box ----------------------------------------------------------------------------

  function clearOutcome() {
    outcome.hidden = true;
    outcome.className = "outcome";
    outcome.textContent = "";
  }

  // kind: "success" | "error" | "retry"; lines: strings or nodes, the first one is the title.
  function showOutcome(kind, title, lines) {
    outcome.className = `outcome outcome-${kind}`;
    outcome.setAttribute("role", kind === "success" ? "status" : "alert");
    outcome.dataset.kind = kind;
    outcome.textContent = "";
    outcome.append(el("h3", { class: "outcome-title" }, title));
    for (const line of lines || []) {
      if (typeof line === "string") {
        outcome.append(el("p", {}, line));
      } else {
        outcome.append(line);
      }
    }
    outcome.hidden = false;
    outcome.focus();
    outcome.scrollIntoView({ block: "start", behavior: "auto" });
  }

  // -- views ----------------------------------------------------------------------------------

  function tz() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "local";
    } catch (_err) {
      return "local";
    }
  }

  function currentAction() {
    const checked = $("input[name=action]:checked");
    return checked ? checked.value : "absence";
  }

  function showAction(action) {
    for (const form of forms) {
      const active = form.dataset.action === action;
      if (active && form.hidden) {
        setDefaults(form);
      }
      form.hidden = !active;
    }
  }

  function showSignedIn(note) {
    signin.hidden = true;
    reports.hidden = false;
    $("#session-text").textContent = note || "Signed in on this tab.";
    for (const form of forms) {
      setDefaults(form);
    }
    showAction(currentAction());
  }

  function showSignedOut() {
    reports.hidden = true;
    signin.hidden = false;
    clearOutcome();
    pending.clear();
    for (const form of forms) {
      form.reset();
      clearErrors(form);
    }
    roleSelect.value = "carer";
  }

  // -- sign in / out --------------------------------------------------------------------------

  async function onSignIn(event) {
    event.preventDefault();
    // An empty check-in: the API checks the key and scope first, then rejects the body (422),
    // so nothing is recorded. 401/403 mean the key is not usable for reports.
    const probe = (key) => postJson("/v1/check-ins", "{}", key, null);
    const status = await page.signIn(signinForm, keyInput, keys, probe, {
      empty: "Paste your organisation's API key.",
      forbidden: "Not authorised: that key cannot send reports. Ask for a carer key.",
    });
    if (status === null) {
      return;
    }
    const checked = status === 422 || status === 429;
    showSignedIn(checked
      ? "Signed in on this tab."
      : "Signed in on this tab. The key could not be checked just now; "
        + "it will be checked when you send a report.");
    $("#reports-title").setAttribute("tabindex", "-1");
    $("#reports-title").focus();
  }

  function onSignOut() {
    forgetKey();
    showSignedOut();
    keyInput.focus();
  }

  // -- reports --------------------------------------------------------------------------------

  function valueOf(form, name) {
    const control = form.elements.namedItem(name);
    return control ? control.value : "";
  }

  // Read the form into the API body. Returns {body, errors} (errors: [[fieldName, message]]).
  function readForm(form) {
    const errors = [];
    const body = {
      child_ref: valueOf(form, "child_ref").trim(),
      reporter: { role: roleSelect.value },
    };
    for (const input of $$("input[type=datetime-local]", form)) {
      if (!input.value) {
        errors.push([input.name, "Enter a date and time."]);
        continue;
      }
      const when = new Date(input.value); // no offset in the value: parsed as local time
      if (Number.isNaN(when.getTime())) {
        errors.push([input.name, "Enter a date and time."]);
      } else if (when.getTime() > Date.now() + FUTURE_SLACK_MS) {
        errors.push([input.name, "This cannot be in the future. Check the date and time."]);
      } else {
        body[input.name] = when.toISOString();
      }
    }
    switch (form.dataset.action) {
      case "absence": {
        body.category = $("input[name=category]:checked", form).value;
        body.reported_flags = $$("input[name=reported_flags]:checked", form).map((i) => i.value);
        body.immediate_danger = $("input[name=immediate_danger]", form).checked;
        const text = valueOf(form, "circumstances").trim();
        if (text) {
          body.circumstances = text;
        }
        break;
      }
      case "return":
        body.how = $("input[name=how]:checked", form).value;
        break;
      case "check-in":
        body.present_at_placement = $("input[name=present_at_placement]", form).checked;
        break;
      default:
        break;
    }
    return { body, errors };
  }

  const DONE = {
    absence: (ref) => [
      `Absence reported for ${ref}`,
      "The duty team is being alerted. Report a return here as soon as the child is back.",
    ],
    return: (ref) => [
      `Return recorded for ${ref}`,
      "Everyone who was alerted will be told the child is back.",
    ],
    "check-in": (ref) => [`Check-in recorded for ${ref}`, "Thank you."],
  };

  // Put each API field error next to its field; returns the items for the error summary.
  function showFieldErrors(form, detail) {
    return detail.map((item) => {
      const path = String(item.field || "");
      const field = fieldFor(form, path, item.message);
      const message = friendly(field ? field.dataset.field : path, item.message);
      if (field) {
        return { control: showFieldError(field, message), message };
      }
      const named = path && path !== "(body)" ? `${path}: ${message}` : message;
      return { control: null, message: named };
    });
  }

  async function onReport(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const button = $("button[type=submit]", form);
    if (button.disabled) {
      return;
    }
    clearErrors(reports);
    clearOutcome();
    const apiKey = storedKey();
    if (!apiKey) {
      showSignedOut();
      keyInput.focus();
      return;
    }
    const { body, errors } = readForm(form);
    if (errors.length) {
      const items = errors.map(([name, message]) => {
        const field = fieldFor(form, name);
        return { control: field ? showFieldError(field, message) : null, message };
      });
      showOutcome("error", "Not sent – check the form", [errorLinks(items)]);
      return;
    }
    const res = await page.sendOnce(pending, form, form.dataset.endpoint, apiKey, JSON.stringify(body));

    if (res === null || res.status >= 500 || res.status === 429) {
      // No definite answer: keep the Idempotency-Key so a second press cannot record twice.
      let wait = "";
      const after = res && res.headers.get("Retry-After");
      if (after && /^\d+$/.test(after)) {
        wait = ` in ${after} second${after === "1" ? "" : "s"}`;
      }
      const why = res === null
        ? "The report could not be sent (no connection, or no answer in time)."
        : res.status === 429
          ? "Too many reports were sent from this organisation in a short time."
          : "The alerting system did not confirm the report.";
      showOutcome("retry", "Not sent – please try again", [
        why,
        `Your answers are still here. Press “${button.textContent}” again${wait}; `
          + "the report will only be recorded once.",
        "If the child is in danger and this keeps failing, phone the duty team or call 999.",
      ]);
      return;
    }
    const data = res.data || {};

    if (res.status === 202 || res.status === 200) {
      const [title, next] = DONE[form.dataset.action](body.child_ref);
      const ref = el("p", { class: "event-id" });
      ref.append("Reference: ", el("code", { id: "event-id" }, String(data.event_id || "")));
      const lines = [next, ref];
      if (typeof data.episode_code === "string" && CODE_RE.test(data.episode_code)) {
        const code = el("p", { class: "episode-code" });
        code.append("Episode code: ", el("code", { id: "episode-code" }, data.episode_code));
        lines.push(code, "Check its status below at any time with this code.");
        $("#status-code").value = data.episode_code;
      }
      showOutcome("success", title, lines);
      form.reset();
      setDefaults(form);
      return;
    }
    if (res.status === 401 || res.status === 403) {
      const detail = typeof data.detail === "string" ? data.detail : "";
      const lines = [
        res.status === 401
          ? "The key was not accepted. Sign out and sign in again with your organisation's key."
          : "Your organisation's key does not allow this report.",
      ];
      if (/outside the key/.test(detail)) {
        lines[0] = "This child is not one of your organisation's children. Check the reference.";
      }
      showOutcome("error", "Not authorised", lines);
      return;
    }
    if (res.status === 422 && Array.isArray(data.detail)) {
      showOutcome("error", "Not sent – check the form", [
        errorLinks(showFieldErrors(form, data.detail)),
      ]);
      return;
    }
    if (res.status === 409) {
      showOutcome("error", "Not sent – check the form", [
        "A report with different answers was already sent. Check the answers and send again.",
      ]);
      return;
    }
    const detail = typeof data.detail === "string" ? data.detail : data.error || "";
    showOutcome("error", "Not sent", [
      `The report was refused (${res.status}${detail ? `: ${detail}` : ""}).`,
    ]);
  }

  // -- episode status -------------------------------------------------------------------------

  const CODE_RE = /^[A-Za-z0-9]{4,12}$/;
  const CANCELLED_BECAUSE = {
    not_missing: "the child was not missing",
    duplicate_report: "it repeated another report",
    wrong_child: "it named the wrong child",
    other: "withdrawn by the duty team",
  };

  function statusLines(data) {
    const lines = [];
    if (data.status === "cancelled") {
      const why = CANCELLED_BECAUSE[data.cancel_reason] || CANCELLED_BECAUSE.other;
      lines.push(`Cancelled: the report was withdrawn (${why}).`);
    } else if (data.status === "closed") {
      lines.push(`Closed: the child was recorded as back at ${localTime(data.returned_at)}.`);
    } else {
      lines.push("Open: the duty team is being alerted.");
    }
    const acks = Array.isArray(data.acknowledged) ? data.acknowledged : [];
    if (acks.length === 0 && data.status === "open") {
      lines.push("Not yet acknowledged by the duty team.");
    }
    for (const ack of acks) {
      lines.push(`Acknowledged by ${String(ack.by)} at ${localTime(ack.at)}.`);
    }
    return lines;
  }

  function localTime(iso) {
    const when = new Date(String(iso));
    if (Number.isNaN(when.getTime())) {
      return "(unknown time)";
    }
    return when.toLocaleString("en-GB", {
      timeZone: "Europe/London",
      weekday: "short",
      day: "numeric",
      month: "short",
      hour: "2-digit",
      minute: "2-digit",
    });
  }

  async function onStatus(event) {
    event.preventDefault();
    const box = $("#episode-status");
    const code = $("#status-code").value.trim().toUpperCase();
    box.hidden = false;
    box.textContent = "";
    if (!CODE_RE.test(code)) {
      box.append(el("p", { class: "field-error" }, "Enter the episode code: 4 to 12 letters and digits."));
      return;
    }
    const apiKey = storedKey();
    let res = null;
    try {
      res = await getJson(`/v1/episodes/${encodeURIComponent(code)}/status`, apiKey || "");
    } catch (_err) {
      res = null;
    }
    let lines;
    if (res === null) {
      lines = ["The status could not be fetched (no connection). Try again."];
    } else if (res.status === 200 && res.data) {
      lines = statusLines(res.data);
    } else if (res.status === 404) {
      lines = ["No episode with that code for your organisation yet. A new report takes a "
        + "moment to appear: try again shortly."];
    } else if (res.status === 401 || res.status === 403) {
      lines = ["Your key does not allow this. Sign out and sign in again."];
    } else {
      lines = [`The status could not be fetched (${res.status}). Try again.`];
    }
    const title = el("p", { class: "episode-status-title" });
    title.append("Episode ", el("code", {}, code));
    box.append(title);
    for (const line of lines) {
      box.append(el("p", {}, line));
    }
  }

  // -- start ----------------------------------------------------------------------------------

  $("#status-form").addEventListener("submit", onStatus);

  for (const node of $$(".tz")) {
    node.textContent = tz();
  }
  signinForm.addEventListener("submit", onSignIn);
  $("#signout").addEventListener("click", onSignOut);
  for (const radio of $$("input[name=action]")) {
    radio.addEventListener("change", () => {
      clearOutcome();
      clearErrors(reports);
      showAction(currentAction());
    });
  }
  for (const form of forms) {
    form.addEventListener("submit", onReport);
  }
  if (storedKey()) {
    showSignedIn();
  } else {
    showSignedOut();
  }
})();
