// The incidents list: filters, pages, and live updates (new incidents on top, changed ones in place).

import { approvalsWaiting } from "./actions.js";
import { api, query } from "./api.js";
import { badge, clear, h, percent, when } from "./dom.js";
import { onLive } from "./live.js";

const STATUSES = ["open", "acknowledged", "mitigated", "resolved"];
const SEVERITIES = ["critical", "major", "minor", "warning", "info"];
const PAGE = 50;

function select(name, label, values, current) {
  return h(
    "label",
    { class: "filter" },
    label,
    h(
      "select",
      { name, id: `filter-${name}` },
      h("option", { value: "" }, "any"),
      values.map((v) => h("option", { value: v, selected: v === current }, v)),
    ),
  );
}

function topCause(cause) {
  if (!cause) return h("span", { class: "muted" }, "—");
  return h(
    "span",
    { class: "cause-brief", title: `${cause.kind || ""}` },
    h("span", { class: "service" }, cause.service),
    " ",
    h("span", { class: "muted" }, percent(cause.probability)),
  );
}

function row(item, flash) {
  const link = `#/incidents/${encodeURIComponent(item.id)}`;
  return h(
    "tr",
    { class: ["incident-row", flash && "flash", `row-${item.status}`], dataset: { id: item.id } },
    h("td", {}, badge("sev", item.severity)),
    h("td", {}, badge("status", item.status)),
    h(
      "td",
      { class: "title-cell" },
      h("a", { href: link, class: "incident-link" }, item.title || item.id),
      item.summary ? h("div", { class: "muted small clip" }, item.summary) : null,
    ),
    h(
      "td",
      { class: "services-cell" },
      (item.services || []).slice(0, 4).map((name) => h("span", { class: "chip" }, name)),
      (item.services || []).length > 4 ? h("span", { class: "muted" }, ` +${item.services.length - 4}`) : null,
    ),
    h("td", { class: "num" }, String(item.member_count ?? "")),
    h("td", {}, topCause(item.top_cause)),
    h("td", {}, when(item.started_at)),
    h("td", {}, when(item.updated_at)),
  );
}

function matches(item, filters) {
  if (filters.status && item.status !== filters.status) return false;
  if (filters.severity && item.severity !== filters.severity) return false;
  if (filters.service && !(item.services || []).includes(filters.service)) return false;
  if (filters.text) {
    const haystack = `${item.title || ""} ${item.summary || ""}`.toLowerCase();
    if (!filters.text.toLowerCase().split(/\s+/).filter(Boolean).every((w) => haystack.includes(w))) return false;
  }
  return true;
}

export function renderIncidentList({ main, params }) {
  const filters = {
    status: params.get("status") || "",
    severity: params.get("severity") || "",
    service: params.get("service") || "",
    text: params.get("text") || "",
  };
  const items = new Map();
  let cursor = null;
  let loading = null;

  const tbody = h("tbody", { id: "incident-rows" });
  const empty = h("p", { class: "muted empty", id: "incidents-empty", hidden: true }, "No incidents match.");
  const error = h("p", { class: "error", role: "alert" });
  const more = h("button", { type: "button", class: "btn", id: "more", hidden: true }, "More");
  const count = h("span", { class: "muted", id: "incident-count" });

  const form = h(
    "form",
    { class: "filters", id: "filters" },
    select("status", "Status", STATUSES, filters.status),
    select("severity", "Severity", SEVERITIES, filters.severity),
    h("label", { class: "filter" }, "Service", h("input", { name: "service", value: filters.service, size: 14 })),
    h(
      "label",
      { class: "filter grow" },
      "Text",
      h("input", { name: "text", type: "search", value: filters.text, placeholder: "words in title or summary" }),
    ),
    h("button", { type: "submit", class: "btn" }, "Apply"),
    count,
  );
  const apply = (event) => {
    if (event) event.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const key of Object.keys(filters)) next[key] = String(data.get(key) || "").trim();
    location.hash = `#/incidents${query(next)}`;
  };
  form.addEventListener("submit", apply);
  for (const sel of form.querySelectorAll("select")) sel.addEventListener("change", apply);

  const waiting = approvalsWaiting();
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Incidents"), waiting.element),
    form,
    error,
    h(
      "table",
      { class: "grid incidents" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Severity", "Status", "Incident", "Services", "Members", "Likeliest cause", "Started", "Updated"].map((t) =>
            h("th", {}, t),
          ),
        ),
      ),
      tbody,
    ),
    empty,
    h("div", { class: "more" }, more),
  );

  function refreshChrome() {
    empty.hidden = items.size > 0;
    more.hidden = !cursor;
    count.textContent = `${items.size}${cursor ? "+" : ""} shown`;
  }

  async function load(reset) {
    const after = reset ? null : cursor;
    const token = {};
    loading = token;
    try {
      const page = await api(`/api/v1/incidents${query({ ...filters, limit: PAGE, cursor: after })}`);
      if (loading !== token) return;
      if (reset) {
        items.clear();
        clear(tbody);
      }
      for (const item of page.incidents) {
        if (items.has(item.id)) continue;
        items.set(item.id, item);
        tbody.append(row(item, false));
      }
      cursor = page.next_cursor;
      error.textContent = "";
    } catch (err) {
      if (loading === token) error.textContent = `Could not load incidents: ${err.message}`;
    } finally {
      if (loading === token) loading = null;
      refreshChrome();
    }
  }

  function upsert(item) {
    const known = items.get(item.id);
    if (known && known.revision > item.revision) return;
    const merged = { ...known, ...item, top_cause: item.top_cause || (known && known.top_cause) || null };
    const existing = tbody.querySelector(`tr[data-id="${CSS.escape(item.id)}"]`);
    if (existing) {
      items.set(item.id, merged);
      existing.replaceWith(row(merged, true));
    } else if (matches(merged, filters)) {
      items.set(item.id, merged);
      tbody.prepend(row(merged, true));
    }
    refreshChrome();
  }

  function rcaUpdate(result) {
    const known = items.get(result.incident_id);
    if (!known || !result.causes || !result.causes.length) return;
    const top = result.causes[0];
    upsert({ ...known, top_cause: { service: top.service, probability: top.probability, kind: top.kind } });
  }

  more.addEventListener("click", () => load(false));
  const stop = onLive((kind, data) => {
    if (kind === "incident") upsert(data);
    else if (kind === "rca") rcaUpdate(data);
    else if (kind === "hello" || kind === "dropped" || kind === "resync") load(true); // what was missed while not connected
  });
  load(true);
  return () => {
    stop();
    waiting.stop();
  };
}
