// kqueue dashboard: live updates over server-sent events and charts drawn as SVG.
// Our own code, no dependencies. Values from the server are set as text (textContent), never
// as HTML, so nothing a job supplied can become markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#2f6fdf", "#e8833a", "#3aa55d", "#c0392b", "#8e44ad", "#16a085", "#7f8c8d"];

function fmt(value, digits) {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  if (Number.isInteger(value) && digits === undefined) return value.toLocaleString("en");
  return Number(value).toLocaleString("en", {minimumFractionDigits: digits ?? 1, maximumFractionDigits: digits ?? 1});
}

function node(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

// One line per series (a list of per-minute counts, oldest first) on a 600x180 canvas.
function drawChart(svg, legend, series) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  while (legend.firstChild) legend.removeChild(legend.firstChild);
  const names = Object.keys(series);
  const width = 600, height = 180, left = 40, bottom = 20, top = 8;
  let peak = 1;
  for (const name of names) for (const v of series[name]) peak = Math.max(peak, v);
  svg.appendChild(node("line", {x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis"}));
  svg.appendChild(node("line", {x1: left, y1: top, x2: left, y2: height - bottom, class: "axis"}));
  const label = node("text", {x: 2, y: top + 10, class: "tick"});
  label.textContent = fmt(peak);
  svg.appendChild(label);
  const zero = node("text", {x: 2, y: height - bottom, class: "tick"});
  zero.textContent = "0";
  svg.appendChild(zero);
  const ago = node("text", {x: left, y: height - 4, class: "tick"});
  ago.textContent = "-60 min";
  svg.appendChild(ago);
  const now = node("text", {x: width - 30, y: height - 4, class: "tick"});
  now.textContent = "now";
  svg.appendChild(now);
  names.forEach((name, i) => {
    const values = series[name];
    const step = (width - left) / Math.max(1, values.length - 1);
    const points = values.map((v, j) => `${(left + j * step).toFixed(1)},${(height - bottom - (v / peak) * (height - bottom - top)).toFixed(1)}`);
    svg.appendChild(node("polyline", {points: points.join(" "), fill: "none", stroke: COLOURS[i % COLOURS.length], "stroke-width": 2}));
    const key = document.createElement("span");
    key.className = "key";
    key.style.borderColor = COLOURS[i % COLOURS.length];
    key.textContent = `${name}: ${fmt(values[values.length - 1] || 0)} this minute`;
    legend.appendChild(key);
  });
}

function updateQueues(queues) {
  const rows = document.querySelectorAll("#queues tbody tr[data-queue]");
  const byName = new Map(queues.map((q) => [q.queue, q]));
  for (const row of rows) {
    const q = byName.get(row.dataset.queue);
    if (!q) continue;
    for (const cell of row.querySelectorAll("td[data-f]")) {
      const value = q[cell.dataset.f];
      cell.textContent = cell.dataset.f.endsWith("_s") ? `${fmt(value, 2)} s` : fmt(value);
      if (cell.dataset.f === "recent_p95_wait_s") cell.classList.toggle("late", value !== null && value > q.slo_s);
    }
  }
}

function updateWorkers(workers) {
  const body = document.querySelector("#workers tbody");
  if (!body) return;
  while (body.firstChild) body.removeChild(body.firstChild);
  for (const w of workers) {
    const tr = document.createElement("tr");
    const tiers = Object.entries(w.tiers).map(([n, t]) => `${n} ${t.running}/${t.capacity}, ${t.waiting}`).join("; ");
    const procs = Object.values(w.tiers).flatMap((t) => t.processes).map((p) => `${p.pid} · ${fmt(p.memory_mb, 0)} MB · ${p.jobs_done}`).join("; ");
    for (const text of [w.worker, w.host, w.pid, w.queues.join(", "), fmt(w.done), `${fmt(w.memory_mb, 0)} MB`, tiers, procs]) {
      const td = document.createElement("td");
      td.textContent = String(text);
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function updateAlerts(alerts) {
  const box = document.getElementById("alerts");
  while (box.firstChild) box.removeChild(box.firstChild);
  for (const a of alerts) {
    const p = document.createElement("p");
    p.className = "alert";
    p.textContent = `${a.queue}: ${a.message}`;
    box.appendChild(p);
  }
}

function showOverview(data) {
  updateQueues(data.queues);
  updateWorkers(data.workers);
  updateAlerts(data.alerts);
  drawChart(document.getElementById("chart-tier"), document.getElementById("legend-tier"), data.throughput_per_min.tier);
  drawChart(document.getElementById("chart-queue"), document.getElementById("legend-queue"), data.throughput_per_min.queue);
  document.getElementById("trace-rows").textContent = fmt(data.trace_rows);
  document.getElementById("updated").textContent = `updated ${new Date(data.read_at * 1000).toLocaleTimeString()}`;
}

function liveOverview() {
  fetch("/api/overview", {credentials: "same-origin"}).then((r) => r.json()).then(showOverview);
  const source = new EventSource("/events");
  source.onmessage = (event) => showOverview(JSON.parse(event.data));
}

function sparklines() {
  for (const span of document.querySelectorAll(".spark[data-values]")) {
    const values = span.dataset.values.split(",").map(Number);
    const peak = Math.max(1, ...values);
    const svg = node("svg", {viewBox: "0 0 60 16", width: 60, height: 16, class: "sparkline"});
    const step = 60 / Math.max(1, values.length - 1);
    svg.appendChild(node("polyline", {points: values.map((v, i) => `${i * step},${16 - (v / peak) * 14}`).join(" "), fill: "none", stroke: COLOURS[0], "stroke-width": 1.5}));
    span.title = span.textContent;
    span.textContent = "";
    span.appendChild(svg);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "overview.html") liveOverview();
  if (page === "classes.html") sparklines();
  if (page === "plan.html") {
    const form = document.getElementById("what-if");
    if (form) form.addEventListener("submit", () => { document.getElementById("simulate").textContent = "Simulating…"; });
  }
});
