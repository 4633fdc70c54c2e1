// One incident: header and lifecycle, timeline, members with why each joined, charts of the anomalous series,
// log lines around onset, the RCA ranking with its evidence, linked changes, its runbook executions (actions.js:
// dry run, blast radius, approve / reject), feedback, and the audit log's entries about it.

import { actionsPanel } from "./actions.js";
import { api, query } from "./api.js";
import { anomalyChart } from "./chart.js";
import { askNote, badge, h, number, percent, s, toast, utc, when } from "./dom.js";
import { onLive } from "./live.js";

const BEFORE_ONSET_MS = 30 * 60e3;
const AFTER_ONSET_MS = 15 * 60e3;
const CHART_POINTS = 240;
const MAX_CHARTS = 12;

const ACTIONS = [
  { verb: "acknowledge", label: "Acknowledge", allowed: (st) => st === "open" },
  { verb: "mitigate", label: "Mitigate", allowed: (st) => st === "open" || st === "acknowledged" },
  { verb: "resolve", label: "Resolve", allowed: (st) => st !== "resolved" },
  { verb: "reopen", label: "Reopen", allowed: (st) => st === "resolved" },
];

function section(title, id, ...children) {
  return h("section", { class: "card", id }, h("h2", {}, title), ...children);
}

function canOperate(me) {
  return me && me.role !== "viewer";
}

function feedbackButton(me, label, text, send, extra = {}) {
  const button = h(
    "button",
    {
      type: "button",
      class: ["btn", "btn-small", extra.class],
      disabled: !canOperate(me),
      title: canOperate(me) ? extra.title || "" : "needs an operator key",
      dataset: { feedback: label, ...(extra.dataset || {}) },
    },
    text,
  );
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await send();
      button.classList.add("done");
      button.textContent = `${text} ✓`;
      toast(`Feedback sent: ${text.toLowerCase()}`);
    } catch (err) {
      button.disabled = false;
      toast(`Feedback not sent: ${err.message}`, "error");
    }
  });
  return button;
}

function sendFeedback(body) {
  return api("/api/v1/feedback", { method: "POST", body: { note: "", related_id: "", ...body } });
}

function header(ctx, incident, reload) {
  const actions = h("div", { class: "actions", id: "lifecycle" });
  for (const action of ACTIONS) {
    const allowed = !incident.merged_into && action.allowed(incident.status);
    const button = h(
      "button",
      {
        type: "button",
        class: ["btn", action.verb === "resolve" ? "btn-primary" : ""],
        disabled: !allowed || !canOperate(ctx.me),
        title: canOperate(ctx.me) ? "" : "needs an operator key",
        dataset: { action: action.verb },
      },
      action.label,
    );
    button.addEventListener("click", async () => {
      const note = await askNote(`${action.label} ${incident.id}`, "Recorded in the incident's history with your name.");
      if (note === null) return;
      button.disabled = true;
      try {
        await api(`/api/v1/incidents/${encodeURIComponent(incident.id)}/${action.verb}`, {
          method: "POST",
          body: { note },
        });
        toast(`${action.label}: sent; the incident changes once correlation records it`);
        reload();
      } catch (err) {
        button.disabled = false;
        toast(`${action.label} refused: ${err.message}`, "error");
      }
    });
    actions.append(button);
  }
  return h(
    "div",
    { class: "incident-head card" },
    h("a", { href: "#/incidents", class: "back" }, "← Incidents"),
    h("h1", { id: "incident-title" }, incident.title || incident.id),
    h(
      "div",
      { class: "meta" },
      badge("sev", incident.severity),
      badge("status", incident.status),
      (incident.services || []).map((name) => h("span", { class: "chip service-chip" }, name)),
    ),
    incident.summary ? h("p", { class: "summary" }, incident.summary) : null,
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Started"),
      h("dd", {}, utc(incident.started_at), " (", when(incident.started_at), ")"),
      h("dt", {}, "Updated"),
      h("dd", {}, utc(incident.updated_at)),
      incident.resolved_at ? [h("dt", {}, "Resolved"), h("dd", {}, utc(incident.resolved_at))] : null,
      h("dt", {}, "Id"),
      h("dd", {}, h("code", {}, incident.id), ` rev ${incident.revision}`),
      incident.merged_into
        ? [
            h("dt", {}, "Merged into"),
            h("dd", {}, h("a", { href: `#/incidents/${encodeURIComponent(incident.merged_into)}` }, incident.merged_into)),
          ]
        : null,
    ),
    actions,
  );
}

function probabilityBar(p) {
  const width = Math.max(0, Math.min(1, Number(p) || 0)) * 100;
  return s(
    "svg",
    { class: "prob-bar", viewBox: "0 0 100 8", preserveAspectRatio: "none", "aria-hidden": "true" },
    s("rect", { class: "prob-track", x: 0, y: 0, width: 100, height: 8 }),
    s("rect", { class: "prob-fill", x: 0, y: 0, width, height: 8 }),
  );
}

function rcaSection(ctx, incident, rca) {
  if (!rca) {
    return section("Root cause", "rca", h("p", { class: "muted" }, "No root-cause analysis of this incident yet."));
  }
  const list = h("ol", { class: "causes", id: "rca-causes" });
  for (const cause of rca.causes || []) {
    const evidence = h("ul", { class: "evidence" });
    for (const item of cause.evidence || []) {
      const weight = Number(item.weight || 0);
      evidence.append(
        h(
          "li",
          { class: weight < 0 ? "against" : "for", title: `log likelihood ratio ${number(weight)}` },
          h("span", { class: "ev-kind" }, item.kind),
          h("span", { class: "ev-weight" }, `${weight >= 0 ? "+" : ""}${number(weight, 2)}`),
          h("span", { class: "ev-text" }, item.text),
        ),
      );
    }
    const related = { subject_kind: "incident", subject_id: incident.id, related_id: cause.service };
    list.append(
      h(
        "li",
        { class: "cause", dataset: { service: cause.service } },
        h(
          "div",
          { class: "cause-head" },
          h("span", { class: "service cause-service" }, cause.service),
          h("span", { class: "chip" }, cause.kind || "unknown"),
          cause.rule ? h("span", { class: "chip rule" }, `rule: ${cause.rule}`) : null,
          h("span", { class: "prob" }, percent(cause.probability)),
          probabilityBar(cause.probability),
          h(
            "span",
            { class: "cause-buttons" },
            feedbackButton(ctx.me, "confirmed_cause", "Confirmed cause", () =>
              sendFeedback({ ...related, label: "confirmed_cause" }),
            ),
            feedbackButton(ctx.me, "wrong_cause", "Wrong cause", () => sendFeedback({ ...related, label: "wrong_cause" })),
          ),
        ),
        evidence,
      ),
    );
  }
  return section(
    "Root cause",
    "rca",
    h("p", { class: "muted small" }, `Analysis of revision ${rca.incident_revision}, ${rca.status}; `, when(rca.analyzed_at)),
    rca.summary ? h("p", {}, rca.summary) : null,
    (rca.missing || []).length ? h("p", { class: "warn" }, `Analysed without: ${rca.missing.join("; ")}`) : null,
    (rca.causes || []).length ? list : h("p", { class: "muted" }, "Nothing moved beyond its baseline: no cause ranked."),
  );
}

function chartsSection(anomalies) {
  const box = section("Anomalous series", "charts");
  if (!anomalies.length) {
    box.append(h("p", { class: "muted" }, "No anomaly members."));
    return box;
  }
  for (const anomaly of anomalies.slice(0, MAX_CHARTS)) {
    const figure = h(
      "figure",
      { class: "chart-box", dataset: { anomaly: anomaly.id } },
      h(
        "figcaption",
        {},
        h("span", { class: "series-name" }, anomaly.series_name),
        " ",
        h("span", { class: "muted" }, Object.entries(anomaly.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ")),
        " ",
        badge("sev", anomaly.severity),
        h(
          "span",
          { class: "muted small" },
          ` ${anomaly.detector}, score ${number(anomaly.score, 2)}, value ${number(anomaly.value)}`,
          Number.isFinite(anomaly.lower) ? `, expected ${number(anomaly.lower)} – ${number(anomaly.upper)}` : "",
        ),
      ),
      h("p", { class: "muted small loading" }, "loading…"),
    );
    box.append(figure);
    drawChart(figure, anomaly);
  }
  if (anomalies.length > MAX_CHARTS) {
    box.append(h("p", { class: "muted small" }, `${anomalies.length - MAX_CHARTS} more anomalous series not charted.`));
  }
  return box;
}

async function drawChart(figure, anomaly) {
  const start = new Date(anomaly.window_start).getTime() - BEFORE_ONSET_MS;
  const end = Math.min(new Date(anomaly.window_end).getTime() + AFTER_ONSET_MS, Math.max(Date.now(), start + 60e3));
  const step = Math.max(1, Math.round((end - start) / 1000 / CHART_POINTS));
  const match = Object.entries(anomaly.labels || {}).map(([k, v]) => `${k}=${v}`);
  const placeholder = figure.querySelector(".loading");
  try {
    const answer = await api(
      `/api/v1/metrics/query${query({ name: anomaly.series_name, match, start: start / 1000, end: end / 1000, step })}`,
    );
    const series = answer.series || [];
    placeholder.replaceWith(
      series.length ? anomalyChart(series, anomaly, [start, end]) : h("p", { class: "muted small" }, "No samples in the store."),
    );
  } catch (err) {
    placeholder.textContent = `Series not available: ${err.message}`;
  }
}

function membersSection(ctx, incident, reload) {
  const rows = h("tbody");
  for (const member of incident.members || []) {
    const reason = member.reason || {};
    const buttons = h("td", { class: "buttons" });
    if (member.kind === "anomaly") {
      buttons.append(
        feedbackButton(ctx.me, "false_positive", "False positive", () =>
          sendFeedback({ subject_kind: "anomaly", subject_id: member.fingerprint, label: "false_positive" }),
        ),
      );
    }
    if ((incident.members || []).length > 1 && !incident.merged_into) {
      const split = h(
        "button",
        {
          type: "button",
          class: "btn btn-small",
          disabled: !canOperate(ctx.me),
          dataset: { feedback: "not_in_incident" },
          title: "This member does not belong here: split it off",
        },
        "Wrong grouping",
      );
      split.addEventListener("click", async () => {
        const note = await askNote(`Split ${member.name} off`, "It is taken out of this incident.");
        if (note === null) return;
        split.disabled = true;
        try {
          await api(`/api/v1/incidents/${encodeURIComponent(incident.id)}/split`, {
            method: "POST",
            body: { fingerprint: member.fingerprint, note },
          });
          toast("Split sent; the incident changes once correlation records it");
          reload();
        } catch (err) {
          split.disabled = false;
          toast(`Split refused: ${err.message}`, "error");
        }
      });
      buttons.append(split);
    }
    rows.append(
      h(
        "tr",
        { class: member.lead ? "lead" : "", dataset: { fingerprint: member.fingerprint } },
        h("td", {}, member.kind, member.lead ? h("span", { class: "chip lead-chip", title: "probable origin" }, "lead") : null),
        h("td", { class: "mono" }, member.name),
        h("td", {}, h("span", { class: "service" }, member.service)),
        h("td", {}, badge("sev", member.severity)),
        h("td", {}, when(member.started_at), member.occurrences > 1 ? ` ×${member.occurrences}` : ""),
        h(
          "td",
          { class: "reason" },
          h("span", { class: "chip" }, reason.rule || "?"),
          " ",
          reason.text || "",
        ),
        buttons,
      ),
    );
  }
  return section(
    `Members (${(incident.members || []).length})`,
    "members",
    h(
      "table",
      { class: "grid" },
      h("thead", {}, h("tr", {}, ["Kind", "Signal", "Service", "Severity", "Started", "Why it joined", ""].map((t) => h("th", {}, t)))),
      rows,
    ),
  );
}

function logsSection(logs) {
  if (!logs.length) return section("Logs around onset", "logs", h("p", { class: "muted" }, "No log lines of these services around onset."));
  return section(
    `Logs around onset (${logs.length})`,
    "logs",
    h(
      "div",
      { class: "logs" },
      logs.map((line) =>
        h(
          "div",
          { class: `log-line log-${String(line.severity || "").toLowerCase().replace(/[^a-z]/g, "")}` },
          h("span", { class: "log-at" }, utc(line.at).slice(11)),
          h("span", { class: "log-sev" }, line.severity || ""),
          h("span", { class: "log-svc" }, (line.services || []).join(",")),
          h("span", { class: "log-msg" }, line.message || ""),
        ),
      ),
    ),
  );
}

function timelineSection(entries) {
  return section(
    "Timeline",
    "timeline",
    entries.length
      ? h(
          "ol",
          { class: "timeline" },
          entries.map((entry) =>
            h(
              "li",
              { class: `tl-${entry.kind}` },
              h("time", { datetime: entry.at, title: utc(entry.at) }, utc(entry.at).slice(11)),
              h("span", { class: "chip" }, entry.kind),
              h("span", {}, entry.text),
            ),
          ),
        )
      : h("p", { class: "muted" }, "Nothing yet."),
  );
}

function changesSection(changes) {
  return section(
    "Changes",
    "changes",
    changes.length
      ? h(
          "ul",
          { class: "changes" },
          changes.map((c) =>
            h(
              "li",
              {},
              h("span", { class: "service" }, c.service),
              " ",
              h("span", { class: "chip" }, c.kind),
              c.version ? h("code", {}, ` ${c.version}`) : null,
              h("div", { class: "small" }, c.text || ""),
              h(
                "div",
                { class: "muted small" },
                utc(c.at),
                Number.isFinite(c.before_onset_s)
                  ? ` · ${Math.round(Math.abs(c.before_onset_s) / 60)} min ${c.before_onset_s >= 0 ? "before" : "after"} onset`
                  : "",
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No deployment or other change linked."),
  );
}

function auditSection(entries) {
  if (entries === null) {
    return section("Audit", "audit", h("p", { class: "muted" }, "The audit log could not be read."));
  }
  return section(
    "Audit",
    "audit",
    entries.length
      ? h(
          "ol",
          { class: "timeline" },
          entries.map((entry) =>
            h(
              "li",
              {},
              h("time", { datetime: entry.at, title: utc(entry.at) }, utc(entry.at).slice(11)),
              h("span", { class: "chip" }, String(entry.action || "")),
              h("span", {}, `${entry.actor || "?"}: ${entry.message || ""}`),
            ),
          ),
        )
      : h("p", { class: "muted" }, "Nothing done on it through the API yet."),
  );
}

export function renderIncident(ctx, incidentId) {
  const { main } = ctx;
  const status = h("p", { class: "muted" }, "Loading…");
  main.append(status);
  let current = null;
  let pending = null;
  let active = true;
  const actions = actionsPanel(ctx, incidentId); // kept across reloads: a comment being typed stays

  async function load() {
    try {
      const [detail, audit] = await Promise.all([
        api(`/api/v1/incidents/${encodeURIComponent(incidentId)}`),
        api(`/api/v1/audit?subject_id=${encodeURIComponent(incidentId)}&limit=20`).then(
          (page) => page.entries,
          () => null,
        ),
      ]);
      if (!active) return;
      current = detail.incident;
      const incident = detail.incident;
      actions.setIncident(incident);
      const view = h(
        "div",
        { class: "incident-page", id: "incident-page" },
        header(ctx, incident, load),
        (detail.missing || []).length ? h("p", { class: "warn" }, `Partly shown: ${detail.missing.join("; ")}`) : null,
        h(
          "div",
          { class: "columns" },
          h(
            "div",
            { class: "col-main" },
            rcaSection(ctx, incident, detail.rca),
            actions.element,
            chartsSection(detail.anomalies || []),
            membersSection(ctx, incident, load),
            logsSection(detail.logs || []),
          ),
          h(
            "div",
            { class: "col-side" },
            timelineSection(detail.timeline || []),
            changesSection(detail.changes || []),
            auditSection(audit),
          ),
        ),
      );
      main.replaceChildren(view);
    } catch (err) {
      if (!active) return;
      status.textContent = err.status === 404 ? `No incident ${incidentId}.` : `Could not load the incident: ${err.message}`;
      status.className = "error";
      main.replaceChildren(h("a", { href: "#/incidents", class: "back" }, "← Incidents"), status);
    }
  }

  // A change of this incident (a new analysis of it, an execution's new state: its audit entries) reloads the page,
  // at most once a second.
  const stop = onLive((kind, data) => {
    const missed = kind === "dropped" || kind === "resync";
    const id = kind === "incident" ? data.id : kind === "rca" || kind === "execution" ? data.incident_id : null;
    if ((id !== incidentId && !missed) || pending) return;
    if (kind === "incident" && current && data.revision <= current.revision) return;
    pending = setTimeout(() => {
      pending = null;
      load().then(() => {
        const head = document.querySelector(".incident-head");
        if (head) head.classList.add("flash");
      });
    }, 1000);
  });
  load();
  return () => {
    active = false;
    stop();
    actions.stop();
    if (pending) clearTimeout(pending);
  };
}
