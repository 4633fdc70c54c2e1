// The service map: services from the topology store in layers by call depth (callers above callees), call
// edges as arrows, services of open incidents highlighted.

import { api, query } from "./api.js";
import { h, s } from "./dom.js";

const NODE_W = 148;
const NODE_H = 34;
const GAP_X = 28;
const GAP_Y = 76;
const MARGIN = 24;

/** Depth of each service: 0 for those nobody calls, else one more than its deepest caller (cycles cut). */
export function layers(names, dependencies) {
  const callers = new Map(names.map((n) => [n, []]));
  for (const d of dependencies) if (d.caller !== d.callee) callers.get(d.callee).push(d.caller);
  const depth = new Map();
  const visiting = new Set();
  const visit = (name) => {
    if (depth.has(name)) return depth.get(name);
    if (visiting.has(name)) return 0; // a cycle: stop here
    visiting.add(name);
    let d = 0;
    for (const caller of callers.get(name)) d = Math.max(d, visit(caller) + 1);
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };
  for (const name of names) visit(name);
  return depth;
}

function label(text) {
  return text.length > 18 ? `${text.slice(0, 17)}…` : text;
}

function draw(topology, hot) {
  const names = new Set(topology.services.map((sv) => sv.name));
  for (const d of topology.dependencies) names.add(d.caller).add(d.callee);
  const sorted = [...names].sort();
  const depth = layers(sorted, topology.dependencies);
  const rows = [];
  for (const name of sorted) {
    const d = depth.get(name);
    (rows[d] ||= []).push(name);
  }
  // Each layer ordered by where its callers stand (their mean position), so edges cross less.
  const callers = new Map();
  for (const d of topology.dependencies) (callers.get(d.callee) || callers.set(d.callee, []).get(d.callee)).push(d.caller);
  const order = new Map();
  for (let r = 0; r < rows.length; r++) {
    rows[r] ||= [];
    const mean = (name) => {
      const placed = (callers.get(name) || []).filter((c) => order.has(c)).map((c) => order.get(c));
      return placed.length ? placed.reduce((a, b) => a + b, 0) / placed.length : Number.POSITIVE_INFINITY;
    };
    rows[r].sort((a, b) => mean(a) - mean(b) || (a < b ? -1 : a > b ? 1 : 0));
    rows[r].forEach((name, i) => order.set(name, (i + 0.5) / rows[r].length));
  }
  const widest = Math.max(1, ...rows.map((r) => r.length));
  const width = MARGIN * 2 + widest * NODE_W + (widest - 1) * GAP_X;
  const height = MARGIN * 2 + rows.length * NODE_H + Math.max(0, rows.length - 1) * GAP_Y;
  const at = new Map();
  rows.forEach((row, r) => {
    const used = row.length * NODE_W + (row.length - 1) * GAP_X;
    const left = (width - used) / 2;
    row.forEach((name, i) => at.set(name, { x: left + i * (NODE_W + GAP_X), y: MARGIN + r * (NODE_H + GAP_Y) }));
  });

  const svg = s(
    "svg",
    { class: "service-map", id: "service-map", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "service map" },
    s(
      "defs",
      {},
      s(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { class: "arrow-head", d: "M0,0L10,5L0,10z" }),
      ),
    ),
  );
  for (const d of topology.dependencies) {
    const a = at.get(d.caller);
    const b = at.get(d.callee);
    if (!a || !b || d.caller === d.callee) continue;
    const x1 = a.x + NODE_W / 2;
    const x2 = b.x + NODE_W / 2;
    const down = b.y > a.y;
    const y1 = down ? a.y + NODE_H : a.y;
    const y2 = down ? b.y : b.y + NODE_H;
    const bend = down ? GAP_Y / 2 : -GAP_Y / 2;
    svg.append(
      s(
        "path",
        {
          class: ["edge", (hot.has(d.caller) && hot.has(d.callee)) && "edge-hot"],
          d: `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`,
          "marker-end": "url(#arrow)",
        },
        s("title", {}, `${d.caller} calls ${d.callee}`),
      ),
    );
  }
  for (const name of sorted) {
    const p = at.get(name);
    const incidents = hot.get(name);
    const node = s(
      "g",
      { class: ["node", incidents && "node-hot"], transform: `translate(${p.x},${p.y})`, "data-service": name },
      s("title", {}, incidents ? `${name}: ${incidents.map((i) => i.title).join("; ")}` : name),
      s("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
      s("text", { x: NODE_W / 2, y: NODE_H / 2 + 4, "text-anchor": "middle" }, label(name)),
    );
    if (incidents) {
      const link = s("a", { href: `#/incidents${query({ status: "open", service: name })}` }, node);
      svg.append(link);
    } else {
      svg.append(node);
    }
  }
  return svg;
}

export function renderMap({ main }) {
  const status = h("p", { class: "muted" }, "Loading…");
  const legend = h(
    "p",
    { class: "muted small legend" },
    h("span", { class: "swatch hot" }),
    h("span", { class: "gap" }, "in an open incident (click for its incidents)"),
    h("span", { class: "swatch" }),
    h("span", { class: "gap" }, "healthy"),
    h("span", {}, "arrows point from caller to callee"),
  );
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Service map")), legend, status);
  let active = true;
  (async () => {
    try {
      const [topology, open] = await Promise.all([
        api("/api/v1/topology"),
        api(`/api/v1/incidents${query({ status: "open", limit: 500 })}`),
      ]);
      if (!active) return;
      const hot = new Map();
      for (const incident of open.incidents || []) {
        for (const name of incident.services || []) (hot.get(name) || hot.set(name, []).get(name)).push(incident);
      }
      if (!topology.services.length && !topology.dependencies.length) {
        status.textContent = "The topology store knows no service yet (PUT /api/v1/config/topology, or traces).";
        return;
      }
      status.replaceWith(h("div", { class: "map-box card" }, draw(topology, hot)));
    } catch (err) {
      if (active) status.textContent = `Could not load the topology: ${err.message}`;
    }
  })();
  return () => {
    active = false;
  };
}
