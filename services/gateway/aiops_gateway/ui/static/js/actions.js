// Runbook executions of one incident (the incident page's "Actions"): what each does and touches, its dry run, the
// approvals its policy asks for, approve / reject with a comment, its steps, verification and history; and a
// control to propose a runbook. Also the approvals waiting (count on the incidents list, #/approvals).

import { api, query } from "./api.js";
import { badge, clear, h, number, toast, utc, when } from "./dom.js";
import { onLive } from "./live.js";

const DECIDERS = new Set(["approver", "admin"]);
const OPERATORS = new Set(["operator", "approver", "admin"]);

function expired(execution) {
  return Boolean(execution.expires_at) && new Date(execution.expires_at).getTime() <= Date.now();
}

function approvers(execution) {
  return (execution.approvals || []).filter((d) => d.decision === "approve");
}

/** The blast radius in one line, as BlastRadius.describe() words it. */
export function describeRadius(radius) {
  const r = radius || {};
  const services = r.services || [];
  const pods = r.pods === null || r.pods === undefined ? "" : `, ${r.pods} pods`;
  const env = r.environment ? ` in ${r.environment}` : "";
  return `${r.high ? "high" : "contained"}: ${services.length} services (${services.join(", ")})${pods}${env}`;
}

function field(label, ...value) {
  return [h("dt", {}, label), h("dd", {}, ...value)];
}

function radiusBlock(execution) {
  const r = execution.blast_radius || {};
  return h(
    "div",
    { class: ["radius", r.high ? "radius-high" : "radius-contained"] },
    h("strong", {}, "Blast radius: "),
    h("span", { class: "radius-text" }, describeRadius(r)),
    (r.targets || []).length ? h("div", { class: "small" }, "Changed by the steps: ", r.targets.join(", ")) : null,
    (r.reasons || []).length ? h("ul", { class: "small reasons" }, r.reasons.map((text) => h("li", {}, text))) : null,
    r.missing ? h("div", { class: "warn small" }, `Topology not read: ${r.missing}`) : null,
  );
}

function approvalsBlock(execution) {
  const got = approvers(execution).length;
  const needed = execution.required_approvals;
  return h(
    "div",
    { class: "approvals" },
    h(
      "div",
      {},
      h("strong", { class: "approval-count" }, `${got} of ${needed} approvals`),
      execution.auto_approved ? h("span", { class: "chip" }, "auto-approved") : null,
    ),
    execution.policy ? h("p", { class: "small policy" }, execution.policy) : null,
    (execution.approvals || []).length
      ? h(
          "ul",
          { class: "decisions" },
          execution.approvals.map((d) =>
            h(
              "li",
              { class: `decision-${d.decision}` },
              h("span", { class: "chip" }, d.decision),
              " ",
              h("span", { class: "service" }, d.by),
              d.role ? h("span", { class: "muted" }, ` (${d.role})`) : null,
              " ",
              when(d.at),
              d.comment ? h("div", { class: "small comment" }, d.comment) : null,
            ),
          ),
        )
      : null,
  );
}

function stepItem(step) {
  return h(
    "li",
    { class: `step step-${step.state}` },
    h(
      "div",
      {},
      badge("state", step.state || "pending"),
      " ",
      h("strong", {}, step.name),
      " ",
      h("span", { class: "muted small" }, `${step.kind} ${step.action}`),
    ),
    step.summary ? h("div", { class: "small step-summary" }, step.summary) : null,
    step.output ? h("pre", { class: "dry-run step-output" }, step.output) : null,
  );
}

function stepsBlock(title, cls, steps) {
  if (!steps || !steps.length) return null;
  return h("div", { class: cls }, h("h3", {}, title), h("ol", { class: "steps" }, steps.map(stepItem)));
}

function band(lower, upper) {
  const has = (x) => x !== null && x !== undefined;
  if (has(lower) && has(upper)) return `${number(lower)} – ${number(upper)}`;
  if (has(upper)) return `at most ${number(upper)}`;
  if (has(lower)) return `at least ${number(lower)}`;
  return "any value";
}

function verificationBlock(v) {
  if (!v) return null;
  const match = Object.entries(v.match || {}).map(([k, val]) => `${k}=${val}`).join(", ");
  const outcome = v.recovered === true ? "recovered" : v.recovered === false ? "not recovered" : "not decided yet";
  return h(
    "div",
    { class: "verification" },
    h("h3", {}, "Verification"),
    h(
      "dl",
      { class: "facts" },
      field("Series", h("code", {}, v.series), match ? ` {${match}}` : ""),
      field("Band", band(v.lower, v.upper), ` for ${v.for_s} s within ${v.within_s} s`),
      field("Last value", number(v.last_value), v.checked_at ? [" at ", utc(v.checked_at)] : ""),
      field("Outcome", h("span", { class: `outcome outcome-${String(v.recovered)}` }, outcome)),
      v.detail ? field("Detail", v.detail) : null,
    ),
  );
}

function historyBlock(history) {
  if (!history || !history.length) return null;
  return h(
    "div",
    { class: "history" },
    h("h3", {}, "History"),
    h(
      "ol",
      { class: "timeline" },
      history.map((t) =>
        h(
          "li",
          {},
          h("time", { datetime: t.at, title: utc(t.at) }, utc(t.at).slice(11)),
          h("span", { class: "chip" }, t.status),
          h("span", {}, `${t.by}${t.note ? `: ${t.note}` : ""}`),
        ),
      ),
    ),
  );
}

function decisionBox(ctx, execution, comments, refresh) {
  const canDecide = DECIDERS.has(ctx.me.role);
  const textarea = h("textarea", {
    class: "decision-comment",
    rows: 2,
    maxlength: 2000,
    placeholder: "Comment (a rejection needs one)",
    "aria-label": "Comment on the decision",
    disabled: !canDecide,
  });
  textarea.value = comments.get(execution.id) || "";
  textarea.addEventListener("input", () => comments.set(execution.id, textarea.value));
  const error = h("p", { class: "error decision-error", role: "alert" });
  const result = h("p", { class: "decision-result small" });
  const title = canDecide ? "" : "needs an approver key";
  const buttons = ["approve", "reject"].map((decision) =>
    h(
      "button",
      {
        type: "button",
        class: ["btn", "btn-small", decision === "approve" ? "btn-primary" : ""],
        dataset: { decision },
        disabled: !canDecide,
        title,
      },
      decision === "approve" ? "Approve" : "Reject",
    ),
  );
  for (const button of buttons) {
    button.addEventListener("click", async () => {
      const decision = button.dataset.decision;
      const comment = textarea.value.trim();
      error.textContent = "";
      if (decision === "reject" && !comment) {
        error.textContent = "A rejection needs a comment: say why.";
        textarea.focus();
        return;
      }
      for (const b of buttons) b.disabled = true;
      try {
        const answer = await api(`/api/v1/approvals/${encodeURIComponent(execution.id)}/${decision}`, {
          method: "POST",
          body: { comment },
        });
        comments.delete(execution.id);
        const more = answer.approvals_needed;
        result.textContent =
          decision === "approve"
            ? `Approval sent; ${more ? `${more} more needed` : "it runs once the action service applies it"}.`
            : "Rejection sent.";
        toast(`${decision === "approve" ? "Approval" : "Rejection"} sent for ${execution.runbook_id}`);
        refresh();
      } catch (err) {
        for (const b of buttons) b.disabled = false;
        error.textContent = `Refused: ${err.message}`;
      }
    });
  }
  const self = ctx.me.name === execution.requested_by;
  return h(
    "div",
    { class: "decision-box" },
    textarea,
    h("div", { class: "actions" }, buttons),
    self ? h("p", { class: "muted small" }, "You requested this one: another approver approves it; you may reject (withdraw) it.") : null,
    result,
    error,
  );
}

/** Why a proposal ended without a decision: a newer RCA ranking fitted another runbook or target. */
function supersededLine(execution) {
  const last = (execution.history || []).at(-1);
  return h(
    "p",
    { class: "small superseded" },
    "Superseded by ",
    execution.superseded_by ? h("code", {}, execution.superseded_by) : "a newer proposal",
    // the note says which ranking, and which approvals given here do not carry over
    last && last.status === "superseded" && last.note ? ` — ${last.note}` : "",
  );
}

function executionCard(ctx, execution, comments, refresh) {
  const pending = execution.status === "pending_approval";
  const params = Object.entries(execution.parameters || {});
  return h(
    "article",
    { class: "execution", dataset: { execution: execution.id, status: execution.status } },
    h(
      "div",
      { class: "execution-head" },
      h("strong", { class: "execution-title" }, execution.title || execution.runbook_id),
      " ",
      h("code", {}, execution.runbook_id),
      h("span", { class: "muted small" }, ` attempt ${execution.attempt}`),
      " ",
      badge("exec", execution.status),
      " ",
      badge("risk", execution.risk),
    ),
    h(
      "div",
      { class: "muted small" },
      `Requested by ${execution.requested_by} `,
      when(execution.requested_at),
      execution.cause_service ? ` for ${execution.cause_service} (${execution.cause_kind || "cause"})` : "",
      pending && execution.expires_at ? [expired(execution) ? "; expired " : "; expires ", when(execution.expires_at)] : "",
    ),
    execution.note ? h("p", { class: "small note" }, execution.note) : null,
    execution.status === "superseded" ? supersededLine(execution) : null,
    params.length
      ? h("div", { class: "small params" }, params.map(([k, v]) => h("span", { class: "chip mono" }, `${k}=${v}`)))
      : null,
    radiusBlock(execution),
    approvalsBlock(execution),
    pending && !expired(execution) ? decisionBox(ctx, execution, comments, refresh) : null,
    stepsBlock("Dry run", "dry-run-steps", execution.dry_run),
    stepsBlock("Steps", "run-steps", execution.steps),
    stepsBlock("Rollback", "rollback-steps", execution.rollback),
    verificationBlock(execution.verification),
    execution.error ? h("p", { class: "error" }, execution.error) : null,
    historyBlock(execution.history),
  );
}

function proposeForm(ctx, incidentId, refresh) {
  const select = h("select", { id: "propose-runbook", "aria-label": "Runbook" }, h("option", { value: "" }, "loading…"));
  const note = h("input", { id: "propose-note", placeholder: "Why (optional)", maxlength: 2000, size: 28 });
  const submit = h("button", { type: "submit", class: "btn btn-small", id: "propose-submit" }, "Propose");
  const message = h("p", { class: "small", id: "propose-message", role: "status" });
  const form = h("form", { class: "propose", id: "propose" }, h("label", { for: "propose-runbook" }, "Propose a runbook "), select, note, submit, message);
  const allowed = OPERATORS.has(ctx.me.role);
  let closed = false;
  const setEnabled = () => {
    const on = allowed && !closed && select.options.length > 0 && select.value !== "";
    submit.disabled = !on;
    select.disabled = !allowed || closed;
    submit.title = !allowed ? "needs an operator key" : closed ? "the incident is resolved or merged" : "";
  };
  select.addEventListener("change", setEnabled);
  api("/api/v1/runbooks").then(
    (page) => {
      const runbooks = [...(page.runbooks || [])].sort((a, b) => (a.title || a.id).localeCompare(b.title || b.id));
      clear(select);
      if (!runbooks.length) {
        select.append(h("option", { value: "" }, "no runbooks loaded"));
      } else {
        select.append(h("option", { value: "" }, "choose…"));
        for (const r of runbooks) select.append(h("option", { value: r.id }, `${r.title || r.id} (${r.id}, ${r.risk || "?"} risk)`));
      }
      setEnabled();
    },
    (err) => {
      clear(select).append(h("option", { value: "" }, "runbooks unavailable"));
      message.textContent = `Runbooks could not be read: ${err.message}`;
      setEnabled();
    },
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!select.value) return;
    submit.disabled = true;
    message.className = "small";
    try {
      await api(`/api/v1/runbooks/${encodeURIComponent(select.value)}/execute`, {
        method: "POST",
        body: { incident_id: incidentId, parameters: {}, note: note.value.trim() },
      });
      message.textContent = `Requested ${select.value}: the action service proposes it with its dry run.`;
      note.value = "";
      refresh();
    } catch (err) {
      message.className = "small error";
      message.textContent = `Refused: ${err.message}`;
    } finally {
      setEnabled();
    }
  });
  return {
    form,
    setIncident(incident) {
      closed = incident.status === "resolved" || Boolean(incident.merged_into);
      setEnabled();
    },
  };
}

/** The "Actions" section of an incident page: one element kept across the page's reloads, refreshed on its own
 *  when an execution of this incident changes. */
export function actionsPanel(ctx, incidentId) {
  const list = h("div", { id: "executions" }, h("p", { class: "muted" }, "Loading…"));
  const comments = new Map(); // typed comments survive a refresh
  let token = null;
  let pending = null;

  async function refresh() {
    const mine = {};
    token = mine;
    try {
      const page = await api(`/api/v1/executions${query({ incident_id: incidentId, limit: 50 })}`);
      if (token !== mine) return;
      const executions = page.executions || [];
      clear(list).append(
        ...(executions.length
          ? executions.map((e) => executionCard(ctx, e, comments, schedule))
          : [h("p", { class: "muted" }, "No runbook proposed yet for this incident.")]),
      );
    } catch (err) {
      if (token === mine) clear(list).append(h("p", { class: "error" }, `Executions could not be read: ${err.message}`));
    }
  }

  function schedule() {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      refresh();
    }, 300);
  }

  const propose = proposeForm(ctx, incidentId, schedule);
  const element = h("section", { class: "card", id: "actions" }, h("h2", {}, "Actions"), list, propose.form);
  const stop = onLive((kind, data) => {
    if ((kind === "execution" && data.incident_id === incidentId) || kind === "resync" || kind === "dropped") schedule();
  });
  refresh();
  return {
    element,
    setIncident: propose.setIncident,
    stop() {
      stop();
      token = null;
      if (pending) clearTimeout(pending);
    },
  };
}

/** "N approvals waiting" for the incidents list: a link to #/approvals, hidden when none. */
export function approvalsWaiting() {
  const link = h("a", { href: "#/approvals", id: "approvals-waiting", class: "badge waiting", hidden: true });
  async function count() {
    try {
      const page = await api(`/api/v1/approvals${query({ limit: 200 })}`);
      const open = (page.executions || []).filter((e) => !expired(e)).length;
      link.textContent = `${open}${page.next_cursor ? "+" : ""} approval${open === 1 ? "" : "s"} waiting`;
      link.hidden = open === 0;
    } catch {
      link.hidden = true;
    }
  }
  const stop = onLive((kind) => {
    if (kind === "execution" || kind === "hello" || kind === "resync") count();
  });
  count();
  return { element: link, stop };
}

/** #/approvals: the executions waiting for a decision, each linking to its incident's page (where it is decided). */
export function renderApprovals({ main }) {
  const rows = h("tbody", { id: "approval-rows" });
  const empty = h("p", { class: "muted empty", hidden: true }, "Nothing waits for approval.");
  const error = h("p", { class: "error", role: "alert" });
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Approvals waiting")),
    error,
    h(
      "table",
      { class: "grid" },
      h("thead", {}, h("tr", {}, ["Runbook", "Incident", "Risk", "Blast radius", "Approvals", "Requested", "Expires"].map((t) => h("th", {}, t)))),
      rows,
    ),
    empty,
  );
  async function load() {
    try {
      const page = await api(`/api/v1/approvals${query({ limit: 200 })}`);
      clear(rows);
      const waiting = (page.executions || []).filter((e) => !expired(e));
      for (const e of waiting) {
        rows.append(
          h(
            "tr",
            { dataset: { execution: e.id } },
            h("td", {}, e.title || e.runbook_id, " ", h("code", { class: "small" }, e.runbook_id)),
            h("td", {}, h("a", { href: `#/incidents/${encodeURIComponent(e.incident_id)}`, class: "incident-link" }, e.incident_id)),
            h("td", {}, badge("risk", e.risk)),
            h("td", { class: "small" }, describeRadius(e.blast_radius)),
            h("td", {}, `${approvers(e).length} of ${e.required_approvals}`),
            h("td", {}, e.requested_by, " ", when(e.requested_at)),
            h("td", {}, when(e.expires_at)),
          ),
        );
      }
      empty.hidden = waiting.length > 0;
      error.textContent = "";
    } catch (err) {
      error.textContent = `Could not load the approvals: ${err.message}`;
    }
  }
  const stop = onLive((kind) => {
    if (kind === "execution" || kind === "resync" || kind === "dropped") load();
  });
  load();
  return stop;
}
