// A series around an anomaly's onset, drawn as inline SVG: the line, the expected band (lower..upper) shaded,
// the anomalous window marked.

import { clock, number, s } from "./dom.js";

const W = 640;
const H = 180;
const PAD = { left: 52, right: 10, top: 10, bottom: 24 };

/** Nice round ticks between lo and hi. */
function ticks(lo, hi, count) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((m) => m >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * series: [{labels, points: [[ms, value]]}]; anomaly: {window_start, window_end, lower, upper, value};
 * range: [startMs, endMs].
 */
export function anomalyChart(series, anomaly, range) {
  const [x0, x1] = range;
  const windowStart = new Date(anomaly.window_start).getTime();
  const windowEnd = new Date(anomaly.window_end).getTime();
  const values = series.flatMap((one) => one.points.map((p) => p[1])).filter((v) => Number.isFinite(v));
  for (const v of [anomaly.lower, anomaly.upper, anomaly.value]) if (Number.isFinite(v)) values.push(v);
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (hi === lo) {
    hi += Math.abs(hi) * 0.1 || 1;
    lo -= Math.abs(lo) * 0.1 || 1;
  }
  const margin = (hi - lo) * 0.08;
  lo -= margin;
  hi += margin;
  const px = (t) => PAD.left + ((t - x0) / Math.max(1, x1 - x0)) * (W - PAD.left - PAD.right);
  const py = (v) => PAD.top + (1 - (v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);
  const clampX = (t) => Math.min(Math.max(px(t), PAD.left), W - PAD.right);

  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": `${anomaly.series_name} around onset`,
    preserveAspectRatio: "none",
  });

  for (const v of ticks(lo, hi, 4)) {
    svg.append(
      s("line", { class: "grid-line", x1: PAD.left, x2: W - PAD.right, y1: py(v), y2: py(v) }),
      s("text", { class: "axis", x: PAD.left - 6, y: py(v) + 4, "text-anchor": "end" }, number(v)),
    );
  }
  const span = x1 - x0;
  const stepMs = [60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3].find((m) => span / m <= 8) || 3600e3;
  for (let t = Math.ceil(x0 / stepMs) * stepMs; t <= x1; t += stepMs) {
    svg.append(s("text", { class: "axis", x: px(t), y: H - 6, "text-anchor": "middle" }, clock(t)));
  }

  if (Number.isFinite(anomaly.lower) && Number.isFinite(anomaly.upper)) {
    const top = py(Math.min(Math.max(anomaly.upper, lo), hi));
    const bottom = py(Math.min(Math.max(anomaly.lower, lo), hi));
    svg.append(
      s(
        "rect",
        { class: "band", x: PAD.left, width: W - PAD.left - PAD.right, y: top, height: Math.max(1, bottom - top) },
        s("title", {}, `expected ${number(anomaly.lower)} – ${number(anomaly.upper)}`),
      ),
    );
  }
  const wx = clampX(windowStart);
  svg.append(
    s(
      "rect",
      {
        class: "anomaly-window",
        x: wx,
        width: Math.max(2, clampX(windowEnd) - wx),
        y: PAD.top,
        height: H - PAD.top - PAD.bottom,
      },
      s("title", {}, "anomalous window"),
    ),
    s("line", { class: "onset", x1: wx, x2: wx, y1: PAD.top, y2: H - PAD.bottom }),
  );

  series.forEach((one, index) => {
    const points = one.points.filter((p) => Number.isFinite(p[1]));
    if (!points.length) return;
    const d = points.map((p, i) => `${i ? "L" : "M"}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join("");
    svg.append(s("path", { class: `line line-${index % 4}`, d }));
  });
  if (Number.isFinite(anomaly.value)) {
    svg.append(
      s(
        "circle",
        { class: "anomaly-point", cx: clampX((windowStart + windowEnd) / 2), cy: py(anomaly.value), r: 3.5 },
        s("title", {}, `observed ${number(anomaly.value)}`),
      ),
    );
  }
  svg.append(
    s("rect", {
      class: "frame",
      x: PAD.left,
      y: PAD.top,
      width: W - PAD.left - PAD.right,
      height: H - PAD.top - PAD.bottom,
    }),
  );
  return svg;
}
