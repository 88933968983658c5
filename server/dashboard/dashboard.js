// The live dashboard: polls the admin API once a second and draws four
// charts on canvases, with no library. The token stays in this browser.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { rate: [], stock: [], latency: [], timer: null };
const keep = 120; // points per chart (two minutes at one poll a second)

$("token").value = localStorage.getItem("lotteryToken") || "";
$("activity").value = localStorage.getItem("lotteryActivity") || $("activity").value;
const params = new URLSearchParams(location.search);
if (params.get("activity")) $("activity").value = params.get("activity");
if (params.get("token")) $("token").value = params.get("token");

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + $("token").value } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || r.status + " " + r.statusText);
  return body;
}

function push(series, v) { series.push(v); if (series.length > keep) series.shift(); }

function line(canvas, series, color) {
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  g.strokeStyle = "#ccd"; g.beginPath(); g.moveTo(40, h - 20); g.lineTo(w, h - 20); g.stroke();
  if (series.length === 0) return;
  const max = Math.max(1, ...series);
  g.fillStyle = "#667"; g.font = "11px system-ui"; g.fillText(String(Math.round(max)), 2, 12); g.fillText("0", 2, h - 22);
  g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
  series.forEach((v, i) => {
    const x = 40 + (w - 45) * (series.length === 1 ? 1 : i / (keep - 1));
    const y = h - 20 - (h - 35) * (v / max);
    i === 0 ? g.moveTo(x, y) : g.lineTo(x, y);
  });
  g.stroke();
}

function lines(canvas, named) {
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  const all = Object.values(named).flat();
  const max = Math.max(1, ...all);
  g.fillStyle = "#667"; g.font = "11px system-ui"; g.fillText(String(Math.round(max)), 2, 12);
  const colors = { p50: "#2a7", p90: "#e90", p99: "#d33" };
  Object.entries(named).forEach(([name, series], k) => {
    g.strokeStyle = colors[name] || "#37c"; g.lineWidth = 2; g.beginPath();
    series.forEach((v, i) => {
      const x = 40 + (w - 45) * (series.length === 1 ? 1 : i / (keep - 1));
      const y = h - 20 - (h - 35) * (v / max);
      i === 0 ? g.moveTo(x, y) : g.lineTo(x, y);
    });
    g.stroke(); g.fillStyle = colors[name]; g.fillText(name, w - 40, 14 + 13 * k);
  });
}

function bars(canvas, rows) {
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  if (rows.length === 0) return;
  const max = Math.max(0.0001, ...rows.flatMap((r) => [r.observed, r.expected]));
  const bw = (w - 50) / rows.length;
  g.font = "11px system-ui";
  rows.forEach((r, i) => {
    const x = 45 + i * bw;
    const ho = (h - 40) * (r.observed / max), he = (h - 40) * (r.expected / max);
    g.fillStyle = "#37c"; g.fillRect(x, h - 20 - ho, bw * 0.4, ho);
    g.fillStyle = "#bbb"; g.fillRect(x + bw * 0.42, h - 20 - he, bw * 0.4, he);
    g.fillStyle = "#333"; g.fillText(r.awardId, x, h - 6);
  });
  g.fillStyle = "#37c"; g.fillText("observed", w - 110, 12); g.fillStyle = "#999"; g.fillText("configured", w - 55, 12);
}

async function poll() {
  const id = Number($("activity").value);
  try {
    const now = new Date();
    // The window is relative to the server's clock, not this browser's.
    const q = `activityId=${id}&from=-60s`;
    const [act, tl, aw, lat] = await Promise.all([
      api(`/api/v1/activities/${id}`),
      api(`/api/v1/analytics/timeline?${q}&step=1s`),
      api(`/api/v1/analytics/awards?activityId=${id}`),
      api(`/api/v1/analytics/latency?${q}`),
    ]);
    const pts = tl.points || [];
    // The last whole second: the newest point is still filling.
    const last = pts.length > 1 ? pts[pts.length - 2] : pts[pts.length - 1];
    const rate = last ? (last.drawsPerSecond || 0) : 0;
    push(state.rate, rate); line($("rate"), state.rate, "#37c"); $("rate-now").textContent = rate.toFixed(0) + " draws/s";
    push(state.stock, act.activity.stockLeft); line($("stock"), state.stock, "#2a7");
    $("stock-now").textContent = `${act.activity.stockLeft} of ${act.activity.stockCount}`;
    const rows = (aw.awards || []).map((a) => ({ awardId: a.awardId, observed: a.observed || 0, expected: a.rate || 0, count: a.count, deviation: a.deviation || 0 }));
    bars($("awards"), rows);
    $("awards-table").innerHTML = "<tr><th>award</th><th>prizes</th><th>observed</th><th>configured</th><th>deviation</th></tr>" +
      rows.map((r) => `<tr><td>${r.awardId}</td><td>${r.count}</td><td>${(100 * r.observed).toFixed(2)}%</td><td>${(100 * r.expected).toFixed(2)}%</td><td>${(100 * r.deviation).toFixed(2)}%</td></tr>`).join("");
    push(state.latency, lat);
    lines($("latency"), { p50: state.latency.map((l) => l.p50Us || 0), p90: state.latency.map((l) => l.p90Us || 0), p99: state.latency.map((l) => l.p99Us || 0) });
    $("latency-now").textContent = `p50 ${lat.p50Us || 0}  p90 ${lat.p90Us || 0}  p99 ${lat.p99Us || 0}`;
    $("status").textContent = "updated " + now.toLocaleTimeString();
  } catch (e) {
    $("status").textContent = "error: " + e.message;
  }
}

$("controls").addEventListener("submit", (ev) => {
  ev.preventDefault();
  localStorage.setItem("lotteryToken", $("token").value);
  localStorage.setItem("lotteryActivity", $("activity").value);
  state.rate = []; state.stock = []; state.latency = [];
  clearInterval(state.timer); poll(); state.timer = setInterval(poll, 1000);
});
if ($("token").value) { poll(); state.timer = setInterval(poll, 1000); }
