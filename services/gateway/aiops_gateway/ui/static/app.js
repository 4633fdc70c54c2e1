// The operator UI: log in with an API key, then hash routes #/incidents, #/incidents/ID, #/approvals, #/map and
// #/demo (the demo panel, in the nav when the gateway has a demo).

import { api, apiKey, forgetApiKey, onUnauthorized, setApiKey, ApiError } from "./js/api.js";
import { byId, clear, h } from "./js/dom.js";
import { onLiveState, startLive, stopLive } from "./js/live.js";
import { renderIncidentList } from "./js/incidents.js";
import { renderIncident } from "./js/incident.js";
import { renderMap } from "./js/map.js";
import { renderApprovals } from "./js/actions.js";
import { demoEnabled, renderDemo } from "./js/demo.js";

const main = byId("main");
let me = null;
let cleanup = null;

const LIVE_TEXT = {
  live: "● live",
  waiting: "● waiting for the broker",
  connecting: "○ connecting",
  reconnecting: "○ reconnecting",
  off: "",
};

onLiveState((state) => {
  const el = byId("live-state");
  el.textContent = LIVE_TEXT[state] || "";
  el.dataset.state = state;
  el.hidden = !LIVE_TEXT[state];
});

function showChrome(visible) {
  for (const id of ["nav", "whoami", "logout"]) byId(id).hidden = !visible;
  if (!visible) {
    byId("live-state").hidden = true;
    byId("nav-demo").hidden = true;
    delete byId("nav").dataset.demo;
  }
}

/** The "Demo" nav entry, shown only when the gateway has a demo; #nav[data-demo] says the answer is in. */
async function offerDemo() {
  const on = await demoEnabled();
  if (me === null) return;
  byId("nav-demo").hidden = !on;
  byId("nav").dataset.demo = on ? "on" : "off";
}

function logout() {
  forgetApiKey();
  me = null;
  stopLive();
  showChrome(false);
  renderLogin();
}

onUnauthorized(() => {
  if (me === null && !apiKey()) return; // several calls were refused at once: the first one logged out
  const wasLoggedIn = me !== null;
  logout();
  byId("login-error").textContent = wasLoggedIn
    ? "Your key is no longer accepted (revoked?). Log in again."
    : "That key was not accepted.";
});

byId("logout").addEventListener("click", logout);

function renderLogin() {
  if (cleanup) cleanup();
  cleanup = null;
  const input = h("input", {
    id: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "aiops_…",
    required: true,
  });
  const error = h("p", { id: "login-error", class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "login card", id: "login-form" },
    h("h1", {}, "Log in"),
    h("label", { for: "api-key" }, "API key"),
    input,
    h(
      "p",
      { class: "muted" },
      "Create one with ",
      h("code", {}, "aiops keys create NAME --role operator"),
      " (viewer keys can read; operators can also acknowledge, resolve, give feedback and propose runbooks;"
        + " approvers approve or reject them).",
    ),
    error,
    h("button", { type: "submit", class: "btn btn-primary", id: "login-submit" }, "Log in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    error.textContent = "";
    setApiKey(key);
    if (await checkKey()) route();
  });
  clear(main).append(form);
  input.focus();
}

async function checkKey() {
  try {
    me = await api("/api/v1/me");
  } catch (err) {
    me = null;
    if (!(err instanceof ApiError && err.status === 401)) {
      forgetApiKey();
      const error = byId("login-error");
      if (error) error.textContent = `The gateway did not answer: ${err.message}`;
    }
    return false;
  }
  byId("whoami").textContent = `${me.name} (${me.role})`;
  showChrome(true);
  offerDemo();
  startLive();
  return true;
}

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(search || "") };
}

function route() {
  if (!me) return renderLogin();
  if (cleanup) cleanup();
  cleanup = null;
  const { parts, params } = parseHash();
  const view = parts[0] || "incidents";
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.route === view);
  }
  clear(main);
  const ctx = { main, me, params };
  if (view === "incidents" && parts[1]) cleanup = renderIncident(ctx, parts[1]);
  else if (view === "map") cleanup = renderMap(ctx);
  else if (view === "approvals") cleanup = renderApprovals(ctx);
  else if (view === "demo") cleanup = renderDemo(ctx);
  else cleanup = renderIncidentList(ctx);
}

window.addEventListener("hashchange", route);

async function boot() {
  if (apiKey() && (await checkKey())) route();
  else if (!me) {
    forgetApiKey();
    renderLogin();
  }
}

boot();
