// What the browser pages of missing-alerts (/carer, /desk) share: the key kept per tab, request
// ids, DOM building, the one fetch wrapper, busy buttons and field errors (the GOV.UK error
// pattern). No build step, no dependencies; loaded with `defer` before each page's own script,
// under a CSP that forbids inline script. Exposed as window.MissingAlertsPage.
(() => {
  "use strict";

  const TIMEOUT_MS = 20000;

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  // The API key, in this tab's sessionStorage only (never localStorage, never the URL), under
  // each page's own name; every call survives a browser that blocks storage.
  function keyStore(name) {
    return {
      get() {
        try {
          return window.sessionStorage.getItem(name);
        } catch (_err) {
          return null;
        }
      },
      set(key) {
        try {
          window.sessionStorage.setItem(name, key);
          return true;
        } catch (_err) {
          return false;
        }
      },
      forget() {
        try {
          window.sessionStorage.removeItem(name);
        } catch (_err) {
          // storage unavailable: nothing was kept
        }
      },
    };
  }

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // randomUUID needs a secure context; getRandomValues does not (plain-http test setups).
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    const part = (from, to) => h.slice(from, to);
    return [part(0, 8), part(8, 12), part(12, 16), part(16, 20), part(20)].join("-");
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      node.setAttribute(name, value);
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  // Every API call of the page: the key in the header only, nothing cached or referred, cut
  // off after TIMEOUT_MS; the answer's JSON, or null when it is not JSON.
  async function callApi(method, path, apiKey, body, idempotencyKey, extraHeaders) {
    const controller = new AbortController();
    const timer = window.setTimeout(() => controller.abort(), TIMEOUT_MS);
    const headers = {
      Accept: "application/json",
      Authorization: `Bearer ${apiKey}`,
      ...(extraHeaders || {}),
    };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    if (idempotencyKey) {
      headers["Idempotency-Key"] = idempotencyKey;
    }
    try {
      const res = await fetch(path, {
        method,
        headers,
        body,
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
        signal: controller.signal,
      });
      let data = null;
      try {
        data = await res.json();
      } catch (_err) {
        data = null;
      }
      return { status: res.status, data, headers: res.headers };
    } finally {
      window.clearTimeout(timer);
    }
  }

  function setBusy(button, busy, busyText) {
    if (busy) {
      button.dataset.label = button.textContent;
      button.textContent = busyText;
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
    } else {
      button.textContent = button.dataset.label || button.textContent;
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  // -- field errors ---------------------------------------------------------------------------

  function clearErrors(root) {
    for (const node of $$(".field-error", root)) {
      const field = node.closest(".field");
      const control = field && $("input, select, textarea", field);
      if (control) {
        const ids = (control.getAttribute("aria-describedby") || "")
          .split(/\s+/)
          .filter((id) => id && id !== node.id);
        if (ids.length) {
          control.setAttribute("aria-describedby", ids.join(" "));
        } else {
          control.removeAttribute("aria-describedby");
        }
      }
      node.remove();
    }
    for (const node of $$(".field-has-error", root)) {
      node.classList.remove("field-has-error");
    }
    for (const node of $$("[aria-invalid]", root)) {
      node.removeAttribute("aria-invalid");
    }
  }

  // Show `message` in `field` (a .field element), just above its control. Returns the control.
  function showFieldError(field, message) {
    const controls = $$("input, select, textarea", field);
    const base = (controls[0] && controls[0].id) || `field-${Math.random().toString(36).slice(2)}`;
    const id = `${base}-error`;
    let node = document.getElementById(id);
    if (!node) {
      node = el("p", { class: "field-error", id });
      const before = controls.length === 1 && !field.matches("fieldset")
        ? controls[0].closest(".choice") || controls[0]
        : $(".choice", field);
      field.insertBefore(node, before || null);
    }
    node.textContent = "";
    node.append(el("span", { class: "visually-hidden" }, "Error: "), message);
    field.classList.add("field-has-error");
    for (const control of controls) {
      if (control.type !== "checkbox" && control.type !== "radio") {
        control.setAttribute("aria-invalid", "true");
      }
      const ids = (control.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
      if (!ids.includes(id)) {
        control.setAttribute("aria-describedby", [...ids, id].join(" "));
      }
    }
    return controls[0] || null;
  }

  // A list of links to the fields in error (the GOV.UK "error summary" pattern).
  function errorLinks(items) {
    const list = el("ul", { class: "error-list" });
    for (const { control, message } of items) {
      const item = el("li");
      if (control && control.id) {
        const link = el("a", { href: `#${control.id}` }, message);
        link.addEventListener("click", (event) => {
          event.preventDefault();
          control.focus();
          control.scrollIntoView({ block: "center" });
        });
        item.append(link);
      } else {
        item.textContent = message;
      }
      list.append(item);
    }
    return list;
  }

  // -- sending --------------------------------------------------------------------------------

  // POST a form's JSON once: the same Idempotency-Key while the body is unchanged and no
  // definite answer came (`pending`: form id -> {key, body}), so pressing again after a network
  // error, a 5xx or a 429 records it once. The answer, or null when none came.
  async function sendOnce(pending, form, path, apiKey, json) {
    let attempt = pending.get(form.id);
    if (!attempt || attempt.body !== json) {
      attempt = { key: uuid(), body: json };
      pending.set(form.id, attempt);
    }
    const button = $("button[type=submit]", form);
    setBusy(button, true, "Sending…");
    let res = null;
    try {
      res = await callApi("POST", path, apiKey, json, attempt.key);
    } catch (_err) {
      res = null;
    } finally {
      setBusy(button, false);
    }
    if (res !== null && res.status < 500 && res.status !== 429) {
      pending.delete(form.id);
    }
    return res;
  }

  // "now" for a datetime-local input: the browser's local time, to the minute.
  function localNow() {
    const d = new Date();
    d.setSeconds(0, 0);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }

  // -- sign in --------------------------------------------------------------------------------

  // The sign-in both pages share: take the pasted key, try it with `probe(key)` (an API call
  // whose status says whether the key serves this page), say next to the field why it is
  // refused, and keep it for the tab. `words`: {empty, forbidden, unchecked}; `unchecked`
  // (optional) refuses any answer but 200 with that message. Returns the status once the key
  // is kept, else null.
  async function signIn(form, input, store, probe, words) {
    clearErrors(form);
    const key = input.value.trim();
    const field = $(".field", form);
    const refuse = (message) => {
      showFieldError(field, message).focus();
      return null;
    };
    if (!key) {
      return refuse(words.empty);
    }
    const button = $("button[type=submit]", form);
    setBusy(button, true, "Checking the key…");
    let status = 0;
    try {
      status = (await probe(key)).status;
    } catch (_err) {
      status = 0;
    } finally {
      setBusy(button, false);
    }
    if (status === 401) {
      return refuse("Not authorised: that key was not accepted. Check you pasted all of it.");
    }
    if (status === 403) {
      return refuse(words.forbidden);
    }
    if (words.unchecked && status !== 200) {
      return refuse(words.unchecked);
    }
    if (!store.set(key)) {
      return refuse("This browser blocks storage for this page, so it cannot keep the key for "
        + "the tab. Allow site storage, or use another browser.");
    }
    input.value = "";
    return status;
  }

  window.MissingAlertsPage = Object.freeze({
    signIn,
    sendOnce,
    localNow,
    $,
    $$,
    keyStore,
    uuid,
    el,
    callApi,
    setBusy,
    clearErrors,
    showFieldError,
    errorLinks,
  });
})();
