// The demo panel (#/demo, in the nav when the gateway has a demo): the simulated shop's services with replicas,
// version and health, the faults in effect with the time they have left, a button per service and kind to inject a
// fault for a chosen while, and "Clear faults".

import { api } from "./api.js";
import { clear, h, toast, utc } from "./dom.js";

const KINDS = [
  ["latency", "Latency"],
  ["errors", "Errors"],
  ["cpu", "CPU"],
  ["bad-deploy", "Bad deploy"],
];
const DURATIONS = [
  [60, "1 min"],
  [300, "5 min"],
  [900, "15 min"],
  [1800, "30 min"],
  [3600, "1 h"],
];
const DEFAULT_DURATION = 300;
const OPERATORS = new Set(["operator", "approver", "admin"]);
const POLL_MS = 5000;

/** Whether to offer the panel: the gateway has a demo (also when it is configured but cannot be reached now, so
 *  the panel can say so). */
export async function demoEnabled() {
  try {
    const status = await api("/api/v1/demo");
    return Boolean(status && status.enabled);
  } catch (err) {
    return err.status === 503;
  }
}

function durationLabel(seconds) {
  const known = DURATIONS.find(([s]) => s === seconds);
  return known ? known[1] : `${seconds} s`;
}

/** "4 min 12 s" until the ISO time; "ending" once it has passed. */
export function timeLeft(iso) {
  const ms = new Date(iso).getTime() - Date.now();
  if (!iso || Number.isNaN(ms)) return "—";
  if (ms <= 0) return "ending";
  const total = Math.ceil(ms / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (hours) return `${hours} h ${minutes} min`;
  return minutes ? `${minutes} min ${seconds} s` : `${seconds} s`;
}

function health(healthy) {
  if (healthy === true) return h("span", { class: "badge health-ok" }, "healthy");
  if (healthy === false) return h("span", { class: "badge health-bad" }, "unhealthy");
  return h("span", { class: "badge health-unknown" }, "unknown");
}

function faultRow(fault) {
  return h(
    "tr",
    { dataset: { fault: fault.id, service: fault.service } },
    h("td", { class: "service" }, fault.service),
    h("td", {}, h("span", { class: "chip" }, fault.kind)),
    h("td", { class: "mono small" }, fault.started_at ? utc(fault.started_at) : "—"),
    h("td", { class: "mono small" }, fault.until ? utc(fault.until) : "—"),
    h("td", { class: "time-left", dataset: { until: fault.until || "" } }, timeLeft(fault.until)),
    h("td", { class: "mono small muted" }, fault.id),
  );
}

export function renderDemo({ main, me }) {
  const allowed = OPERATORS.has(me.role);
  const why = allowed ? null : "needs an operator key";
  const duration = h(
    "select",
    { id: "demo-duration", "aria-label": "How long a fault lasts" },
    DURATIONS.map(([seconds, label]) => h("option", { value: seconds, selected: seconds === DEFAULT_DURATION }, label)),
  );
  const clearButton = h(
    "button",
    { type: "button", class: "btn", id: "demo-clear", disabled: !allowed, title: why },
    "Clear faults",
  );
  const readError = h("p", { class: "error", id: "demo-error", role: "alert" });
  const message = h("p", { class: "small", id: "demo-message", role: "status" });
  const serviceRows = h("tbody", { id: "demo-services" });
  const faultRows = h("tbody", { id: "demo-faults" });
  const noFaults = h("p", { class: "muted", id: "demo-no-faults" }, "No fault in effect.");
  const faultsTable = h(
    "table",
    { class: "grid", hidden: true },
    h(
      "thead",
      {},
      h("tr", {}, ["Service", "Kind", "Started", "Until", "Time left", "Id"].map((t) => h("th", {}, t))),
    ),
    faultRows,
  );
  const body = h(
    "div",
    { id: "demo-body", hidden: true },
    h(
      "div",
      { class: "demo-controls" },
      h("label", { for: "demo-duration" }, "Inject faults for "),
      duration,
      h("span", { class: "spacer" }),
      clearButton,
    ),
    message,
    h(
      "table",
      { class: "grid demo-services" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, "Service"),
          h("th", { class: "num" }, "Replicas"),
          h("th", {}, "Version"),
          h("th", {}, "Health"),
          h("th", {}, "Faults"),
          h("th", {}, "Inject a fault"),
        ),
      ),
      serviceRows,
    ),
    h("h2", { class: "demo-faults-title" }, "Faults in effect"),
    noFaults,
    faultsTable,
  );
  const off = h(
    "p",
    { class: "muted", id: "demo-off", hidden: true },
    "This gateway has no demo configured (AIOPS_GATEWAY_DEMO_URL). Start one with ",
    h("code", {}, "aiops demo"),
    ".",
  );
  main.append(
    h(
      "section",
      { class: "card", id: "demo" },
      h("h1", {}, "Demo shop"),
      h(
        "p",
        { class: "muted small" },
        "Faults go to the simulated shop; its anomalies, the incident and the runbook proposed for it show up under "
          + "Incidents and Approvals.",
      ),
      readError,
      off,
      body,
    ),
  );

  const rows = new Map(); // service name -> its row's cells, kept across refreshes so a click never lands on a stale row
  let token = null;
  let stopped = false;

  function showMessage(text, isError) {
    message.className = isError ? "small error" : "small";
    message.textContent = text;
  }

  async function inject(service, kind, button) {
    const forS = Number(duration.value);
    button.disabled = true;
    try {
      const fault = await api("/api/v1/demo/faults", { method: "POST", body: { service, kind, for_s: forS } });
      showMessage(`Injected ${kind} into ${service} for ${durationLabel(forS)}; it ends at ${utc(fault.until)}.`, false);
      toast(`Fault injected: ${service} ${kind}`);
      refresh();
    } catch (err) {
      showMessage(`Refused: ${err.message}`, true);
    } finally {
      button.disabled = !allowed;
    }
  }

  clearButton.addEventListener("click", async () => {
    clearButton.disabled = true;
    try {
      const answer = await api("/api/v1/demo/faults", { method: "DELETE" });
      showMessage(`Cleared ${answer.cleared} fault${answer.cleared === 1 ? "" : "s"}.`, false);
      refresh();
    } catch (err) {
      showMessage(`Refused: ${err.message}`, true);
    } finally {
      clearButton.disabled = !allowed;
    }
  });

  function serviceRow(name) {
    const cells = {
      replicas: h("td", { class: "num replicas" }),
      version: h("td", { class: "mono version" }),
      health: h("td", { class: "health" }),
      faults: h("td", { class: "faults" }),
    };
    const buttons = KINDS.map(([kind, label]) => {
      const button = h(
        "button",
        { type: "button", class: "btn btn-small", dataset: { kind }, disabled: !allowed, title: why },
        label,
      );
      button.addEventListener("click", () => inject(name, kind, button));
      return button;
    });
    cells.row = h(
      "tr",
      { dataset: { service: name } },
      h("td", { class: "service" }, name),
      cells.replicas,
      cells.version,
      cells.health,
      cells.faults,
      h("td", { class: "buttons" }, buttons),
    );
    return cells;
  }

  function show(status) {
    const services = Object.entries(status.services || {});
    const faults = status.faults || [];
    const names = services.map(([name]) => name);
    if (names.join("\u0000") !== [...rows.keys()].join("\u0000")) {
      rows.clear();
      clear(serviceRows);
      for (const name of names) {
        const cells = serviceRow(name);
        rows.set(name, cells);
        serviceRows.append(cells.row);
      }
    }
    for (const [name, state] of services) {
      const cells = rows.get(name);
      const s = state || {};
      cells.replicas.textContent = s.replicas === null || s.replicas === undefined ? "—" : String(s.replicas);
      cells.version.textContent = s.version || "—";
      clear(cells.health).append(health(s.healthy));
      const own = faults.filter((f) => f.service === name);
      clear(cells.faults).append(...own.map((f) => h("span", { class: "chip fault-chip" }, f.kind)));
      cells.row.classList.toggle("row-faulty", own.length > 0);
    }
    clear(faultRows).append(...faults.map(faultRow));
    faultsTable.hidden = faults.length === 0;
    noFaults.hidden = faults.length > 0;
  }

  async function refresh() {
    const mine = {};
    token = mine;
    try {
      const status = await api("/api/v1/demo");
      if (token !== mine || stopped) return;
      readError.textContent = "";
      off.hidden = Boolean(status.enabled);
      body.hidden = !status.enabled;
      if (status.enabled) show(status);
    } catch (err) {
      if (token === mine && !stopped) readError.textContent = `The demo could not be read: ${err.message}`;
    }
  }

  const poll = setInterval(refresh, POLL_MS);
  const tick = setInterval(() => {
    for (const cell of faultRows.querySelectorAll("td.time-left")) cell.textContent = timeLeft(cell.dataset.until);
  }, 1000);
  refresh();
  return () => {
    stopped = true;
    clearInterval(poll);
    clearInterval(tick);
  };
}
