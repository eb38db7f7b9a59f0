// bt serve's page: the runs, a run's live curves, runs overlaid, and a
// checkpoint's neighbours and PCA map. No framework, no build step; text
// from runs is always set as text, never as HTML.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

// The charts of a run: each a title and the metrics.jsonl fields it draws,
// with a scale for the values.
const GROUPS = [
  { id: "loss", title: "Barlow Twins loss", fields: ["loss"] },
  { id: "terms", title: "loss terms: invariance and redundancy", fields: ["invariance", "redundancy"] },
  { id: "lr", title: "learning rate", fields: ["lr_weights", "lr_biases"] },
  { id: "knn", title: "kNN top-1 on the test split (%)", fields: ["knn20", "knn200"], scale: 100 },
  { id: "c", title: "cross-correlation: mean C_ii and mean |C_ij|", fields: ["mean_c_ii", "mean_abs_c_ij"] },
  { id: "speed", title: "throughput (pairs/s)", fields: ["pairs_per_s"] },
  { id: "memory", title: "memory (MiB): device and resident", fields: ["device_bytes", "rss_bytes"], scale: 1 / 1048576 },
];
// Fields drawn nowhere: the step is the x axis; bad_images is counted in
// the run's last row.
const KNOWN = new Set(GROUPS.flatMap(g => g.fields).concat(["step", "epoch", "elapsed_s", "bad_images"]));

function el(tag, attrs, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") e.addEventListener("click", v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function getJSON(url, opts) {
  const r = await fetch(url, opts);
  if (!r.ok) throw new Error((await r.text()) || r.statusText);
  return r.json();
}

function fmt(v) {
  if (typeof v !== "number") return v === undefined ? "" : String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  if (Number.isInteger(v)) return String(v);
  return v.toPrecision(4);
}

function stateBadge(s) { return el("span", { class: "state " + s, "data-state": s }, s); }

// Metrics is a run's metrics.jsonl read incrementally: rows keyed by step,
// so that steps a resumed run logs again replace the old ones.
class Metrics {
  constructor(id) { this.id = id; this.offset = 0; this.rows = new Map(); this.skipped = 0; }
  async poll() {
    for (;;) {
      const m = await getJSON(`api/metrics?id=${encodeURIComponent(this.id)}&offset=${this.offset}`);
      if (m.reset) this.rows.clear();
      for (const r of m.rows) if (typeof r.step === "number") this.rows.set(r.step, Object.assign(this.rows.get(r.step) || {}, r));
      this.offset = m.next;
      this.skipped += m.skipped;
      if (!m.more) return m.rows.length > 0 || m.reset;
    }
  }
  sorted() { return [...this.rows.values()].sort((a, b) => a.step - b.step); }
  series(field, scale) {
    const pts = [];
    for (const r of this.sorted()) {
      const v = r[field];
      if (typeof v === "number" && Number.isFinite(v)) pts.push([r.step, v * (scale || 1)]);
    }
    return pts;
  }
}

// chart draws series [{name, pts: [[x, y]…]}] as an SVG line plot; the
// svg element carries data-points, the number of points drawn.
function chart(id, title, series, w = 390, h = 210) {
  const box = el("div", { class: "chart", id: "chart-" + id });
  box.append(el("h3", {}, title));
  const pad = { l: 52, r: 8, t: 6, b: 22 };
  const svg = el("svg:svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}` });
  const all = series.flatMap(s => s.pts);
  svg.setAttribute("data-points", all.length);
  if (all.length === 0) {
    svg.append(el("svg:text", { x: w / 2, y: h / 2, "text-anchor": "middle" }, "no data yet"));
    box.append(svg);
    return box;
  }
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [x, y] of all) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.05 || 1; y1 += Math.abs(y1) * 0.05 || 1; }
  const sx = x => pad.l + (x - x0) / (x1 - x0) * (w - pad.l - pad.r);
  const sy = y => h - pad.b - (y - y0) / (y1 - y0) * (h - pad.t - pad.b);
  svg.append(el("svg:rect", { x: pad.l, y: pad.t, width: w - pad.l - pad.r, height: h - pad.t - pad.b, fill: "none", stroke: "#ccc" }));
  for (let k = 0; k <= 4; k++) {
    const y = y0 + (y1 - y0) * k / 4, x = x0 + (x1 - x0) * k / 4;
    svg.append(el("svg:text", { x: pad.l - 4, y: sy(y) + 3, "text-anchor": "end" }, fmt(y)));
    svg.append(el("svg:line", { x1: pad.l, x2: w - pad.r, y1: sy(y), y2: sy(y), stroke: "#eee" }));
    svg.append(el("svg:text", { x: sx(x), y: h - 6, "text-anchor": "middle" }, fmt(Math.round(x))));
  }
  const legend = el("div", { class: "legend" });
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    // At most ~2 points a pixel are drawn; the last point always.
    const stride = Math.max(1, Math.floor(s.pts.length / (2 * w)));
    const pts = s.pts.filter((_, k) => k % stride === 0 || k === s.pts.length - 1);
    if (pts.length === 1) svg.append(el("svg:circle", { cx: sx(pts[0][0]), cy: sy(pts[0][1]), r: 3, fill: color }));
    svg.append(el("svg:polyline", { fill: "none", stroke: color, "stroke-width": 1.5, "data-series": s.name, "data-points": s.pts.length,
      points: pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ") }));
    const last = s.pts[s.pts.length - 1];
    legend.append(el("span", {}, el("i", { style: `background:${color}` }), `${s.name}${last ? " " + fmt(last[1]) : ""}`));
  });
  box.append(svg, legend);
  return box;
}

let timers = [];
function every(ms, fn) { timers.push(setInterval(fn, ms)); }
function clearTimers() { timers.forEach(clearInterval); timers = []; }

async function route() {
  clearTimers();
  const main = document.getElementById("main");
  const [, page, ...rest] = location.hash.replace(/^#/, "").split("/");
  const arg = decodeURIComponent(rest.join("/"));
  try {
    if (page === "run") await runPage(main, arg);
    else if (page === "compare") await comparePage(main, arg.split(","));
    else if (page === "embed") await embedPage(main, arg);
    else await runsPage(main);
  } catch (e) {
    main.replaceChildren(el("p", { class: "error" }, String(e.message || e)));
  }
}

async function runsPage(main) {
  const draw = async () => {
    const data = await getJSON("api/runs");
    document.getElementById("root").textContent = data.root;
    const table = el("table", { id: "runs" }, el("tr", {}, ["", "run", "kind", "state", "model", "data", "batch", "started", "step", "loss", "kNN k=20", "pairs/s"].map(h => el("th", {}, h))));
    const grids = new Map();
    for (const r of data.runs) {
      const c = r.config || {};
      const last = r.last || {};
      if (r.grid) grids.set(r.grid, (grids.get(r.grid) || []).concat(r.id));
      table.append(el("tr", { "data-run": r.id },
        el("td", {}, el("input", { type: "checkbox", value: r.id })),
        el("td", {}, el("a", { href: "#/run/" + encodeURIComponent(r.id) }, r.id)),
        el("td", {}, r.kind), el("td", { title: r.reason }, stateBadge(r.state)),
        el("td", {}, c.model ? `${c.model.arch} ${c.model.projector || ""}` : ""),
        el("td", {}, c.data ? c.data.name : ""), el("td", { class: "num" }, c.batch || ""),
        el("td", {}, r.start ? new Date(r.start).toLocaleString() : ""),
        el("td", { class: "num" }, r.total ? `${r.steps} / ${r.total}` : r.steps),
        el("td", { class: "num" }, fmt(last.loss)),
        el("td", { class: "num" }, last.knn20 !== undefined ? fmt(100 * last.knn20) + "%" : ""),
        el("td", { class: "num" }, fmt(last.pairs_per_s))));
    }
    const overlay = el("button", { id: "overlay", onclick: () => {
      const ids = [...table.querySelectorAll("input:checked")].map(i => i.value);
      if (ids.length) location.hash = "#/compare/" + ids.map(encodeURIComponent).join(",");
    } }, "Overlay the runs ticked");
    const gridLinks = [...grids].map(([g, ids]) => el("li", {}, el("a", { href: "#/compare/" + ids.map(encodeURIComponent).join(",") }, `the ${g} grid overlaid (${ids.length} runs)`)));
    main.replaceChildren(el("h1", {}, `Runs (${data.runs.length})`), data.runs.length ? table : el("p", { class: "muted" }, "No runs here yet: bt pretrain -out writes one."),
      el("p", {}, overlay), gridLinks.length ? el("ul", {}, gridLinks) : "");
  };
  await draw();
  every(5000, () => { if (!document.querySelector("#runs input:checked")) draw().catch(() => {}); });
}

function configSummary(c) {
  if (!c) return "";
  const parts = [];
  if (c.model) parts.push(`${c.model.arch}, projector ${c.model.projector}`);
  if (c.data) parts.push(`${c.data.name}${c.data.dir ? " (" + c.data.dir + ")" : ""}`);
  for (const k of ["batch", "epochs", "steps", "lambda", "optimizer", "lr", "seed"]) if (c[k] !== undefined && c[k] !== 0 && c[k] !== "") parts.push(`${k} ${typeof c[k] === "object" ? JSON.stringify(c[k]) : c[k]}`);
  return parts.join(" · ");
}

async function runPage(main, id) {
  const metrics = new Metrics(id);
  const head = el("div"), charts = el("div", { class: "charts", id: "charts" }), notes = el("div", { id: "notes" }), heat = el("div", { class: "heat", id: "heat" });
  main.replaceChildren(head, el("h2", {}, "Curves"), charts, notes, el("h2", {}, "Cross-correlation"), heat);
  let heatKey = "";
  const drawRun = async () => {
    const r = await getJSON("api/run?id=" + encodeURIComponent(id));
    const last = r.last || {};
    head.replaceChildren(
      el("h1", {}, r.id, " ", stateBadge(r.state)),
      el("p", { class: "muted", id: "reason" }, r.reason),
      el("table", { class: "kv" },
        el("tr", {}, el("td", {}, "kind"), el("td", {}, r.kind + (r.grid ? ` (grid ${r.grid})` : ""))),
        el("tr", {}, el("td", {}, "config"), el("td", {}, configSummary(r.config))),
        el("tr", {}, el("td", {}, "started"), el("td", {}, r.start ? new Date(r.start).toLocaleString() : "")),
        el("tr", {}, el("td", {}, "step"), el("td", { id: "step" }, r.total ? `${r.steps} / ${r.total}` : r.steps)),
        el("tr", {}, el("td", {}, "last step"), el("td", {}, Object.entries(last).map(([k, v]) => `${k} ${fmt(v)}`).join(", "))),
        r.holder ? el("tr", {}, el("td", {}, "lock"), el("td", { class: "muted" }, r.holder)) : ""),
      el("p", {}, r.checkpoints.length ? el("a", { href: "#/embed/" + encodeURIComponent(id) }, "What it learned: neighbours and a PCA map of its embeddings") : el("span", { class: "muted" }, "no checkpoint yet")));
    const key = JSON.stringify([r.heatmaps, r.updated]);
    if (key !== heatKey) {
      heatKey = key;
      const v = encodeURIComponent(r.updated);
      heat.replaceChildren(...r.heatmaps.map(n => el("figure", {}, el("img", { src: `files/${id === "." ? "" : id + "/"}${n}?v=${v}`, alt: n }), el("figcaption", {}, n))));
      if (!r.heatmaps.length) heat.append(el("p", { class: "muted" }, "none yet: a run writes c_start.png after its first step and c_end.png after its last"));
    }
  };
  const drawCharts = () => {
    const rows = metrics.sorted();
    const extra = new Set(), texts = [];
    for (const r of rows) for (const [k, v] of Object.entries(r)) {
      if (KNOWN.has(k)) continue;
      if (typeof v === "number") extra.add(k);
      else if (typeof v === "string" && v) texts.push([r.step, k, v]);
    }
    const groups = GROUPS.concat([...extra].sort().map(k => ({ id: k, title: k, fields: [k] })));
    charts.replaceChildren(...groups.map(g => {
      const series = g.fields.map(f => ({ name: f, pts: metrics.series(f, g.scale) })).filter(s => s.pts.length || g.fields.length === 1);
      return series.length ? chart(g.id, g.title, series) : null;
    }).filter(Boolean));
    notes.replaceChildren(...(texts.length ? [el("h2", {}, "Warnings and notes"), el("ul", { id: "warnings" }, texts.slice(-50).map(([s, k, v]) => el("li", { class: "warn" }, `step ${s}: ${k}: ${v}`)))] : []),
      metrics.skipped ? el("p", { class: "muted" }, `${metrics.skipped} lines of metrics.jsonl held no row`) : "");
  };
  await drawRun();
  await metrics.poll();
  drawCharts();
  every(2000, async () => { try { if (await metrics.poll()) drawCharts(); } catch (e) {} });
  every(3000, () => drawRun().catch(() => {}));
}

async function comparePage(main, ids) {
  const ms = ids.map(id => new Metrics(id));
  const charts = el("div", { class: "charts", id: "charts" });
  main.replaceChildren(el("h1", {}, `${ids.length} runs overlaid`), el("p", {}, ids.map((id, i) => el("span", { style: `color:${COLORS[i % COLORS.length]};margin-right:12px` }, el("a", { href: "#/run/" + encodeURIComponent(id) }, id)))), charts);
  const fields = ["loss", "invariance", "redundancy", "knn20", "knn200", "mean_c_ii", "mean_abs_c_ij", "lr_weights", "pairs_per_s", "device_bytes"];
  const draw = () => charts.replaceChildren(...fields.map(f => {
    const g = GROUPS.find(g => g.fields.includes(f));
    const series = ms.map((m, i) => ({ name: ids[i], color: COLORS[i % COLORS.length], pts: m.series(f, g && g.scale) })).filter(s => s.pts.length);
    return series.length ? chart(f, f + (g && g.scale === 100 ? " (%)" : g && g.scale ? " (MiB)" : ""), series) : null;
  }).filter(Boolean));
  await Promise.all(ms.map(m => m.poll()));
  draw();
  every(3000, async () => {
    try { if ((await Promise.all(ms.map(m => m.poll()))).some(Boolean)) draw(); } catch (e) {}
  });
}

async function embedPage(main, id) {
  const r = await getJSON("api/run?id=" + encodeURIComponent(id));
  const runs = await getJSON("api/runs");
  const ckpt = el("select", { id: "checkpoint" }, r.checkpoints.map(c => el("option", { value: c }, c)));
  const source = el("select", { id: "source" }, el("option", { value: "run" }, `the run's dataset (${r.config && r.config.data ? r.config.data.name : "?"})`),
    runs.images ? el("option", { value: "images" }, "the images folder given with -images") : null);
  const n = el("input", { id: "n", type: "number", value: 500, min: 2, max: 5000, style: "width:6em" });
  const status = el("div", { id: "embed-status" });
  const view = el("div", { id: "embed-view" });
  const go = el("button", { id: "embed-go", onclick: () => start().catch(e => status.replaceChildren(el("p", { class: "error" }, e.message))) }, "Embed");
  main.replaceChildren(el("h1", {}, "What ", el("a", { href: "#/run/" + encodeURIComponent(id) }, id), " learned"),
    el("p", {}, "checkpoint ", ckpt, " images ", source, " sample of ", n, " ", go),
    el("p", { class: "muted" }, "The sample is embedded on the device with the backbone's evaluation preprocessing; results are cached by the checkpoint's contents."),
    status, view);
  let picked = -1, key = "";
  const start = async () => {
    const body = JSON.stringify({ run: id, checkpoint: ckpt.value, source: source.value, n: Number(n.value) });
    let s = await getJSON("api/embed", { method: "POST", headers: { "Content-Type": "application/json" }, body });
    key = s.key;
    view.replaceChildren();
    while (s.state === "embedding") {
      status.replaceChildren(el("p", {}, "embedding ", el("span", { class: "bar" }, el("div", { style: `width:${s.total ? 100 * s.done / s.total : 0}%` })), ` ${s.done} / ${s.total || "?"} images`));
      await new Promise(res => setTimeout(res, 400));
      s = await getJSON("api/embed?key=" + key);
    }
    if (s.state === "failed") throw new Error(s.error);
    status.replaceChildren(el("p", { "data-state": "done" }, `${s.total} images, ${s.dim}-dimensional representations. The map's axes explain ${(100 * s.variance[0]).toFixed(1)}% and ${(100 * s.variance[1]).toFixed(1)}% of the variance.`));
    await drawMap();
  };
  const drawMap = async () => {
    const m = await getJSON("api/embed/map?key=" + key);
    const w = 520, h = 520, pad = 10;
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const p of m.points) { x0 = Math.min(x0, p.x); x1 = Math.max(x1, p.x); y0 = Math.min(y0, p.y); y1 = Math.max(y1, p.y); }
    const sx = x => pad + (x - x0) / ((x1 - x0) || 1) * (w - 2 * pad), sy = y => h - pad - (y - y0) / ((y1 - y0) || 1) * (h - 2 * pad);
    const svg = el("svg:svg", { id: "map", width: w, height: h, "data-points": m.points.length, style: "background:#fff;border:1px solid #ddd" });
    for (const p of m.points) {
      const c = el("svg:circle", { cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: 4, fill: p.label >= 0 ? COLORS[p.label % COLORS.length] : "#1f77b4", "fill-opacity": 0.7, "data-i": p.i, onclick: () => pick(p.i) });
      c.append(el("svg:title", {}, p.name + (p.label >= 0 && m.classes[p.label] ? ` (${m.classes[p.label]})` : "")));
      svg.append(c);
    }
    const legend = el("div", { class: "legend" }, m.classes.map((c, i) => el("span", {}, el("i", { style: `background:${COLORS[i % COLORS.length]}` }), c)));
    const names = el("datalist", { id: "names" }, m.points.map(p => el("option", { value: p.name })));
    const query = el("input", { id: "query", list: "names", placeholder: "an image's name", size: 30 });
    const show = el("button", { id: "query-go", onclick: () => { const p = m.points.find(p => p.name === query.value); if (p) pick(p.i); } }, "Neighbours");
    const nn = el("div", { id: "nn" }, el("p", { class: "muted" }, "Click a point, or name an image, to see its nearest neighbours."));
    view.replaceChildren(el("h2", {}, "PCA map of the sample"), legend, svg, el("h2", {}, "Nearest neighbours (cosine distance)"), el("p", {}, names, query, " ", show), nn);
    const pick = async i => {
      picked = i;
      svg.querySelectorAll("circle.picked").forEach(c => c.classList.remove("picked"));
      const c = svg.querySelector(`circle[data-i="${i}"]`);
      if (c) c.classList.add("picked");
      const res = await getJSON(`api/embed/neighbours?key=${key}&i=${i}&k=12`);
      const label = l => l >= 0 && m.classes[l] ? m.classes[l] : "";
      nn.replaceChildren(el("ul", { class: "nn", id: "neighbours" },
        el("li", { class: "query", "data-name": res.name }, el("img", { src: `api/embed/image?key=${key}&i=${i}` }), el("div", {}, res.name), el("div", {}, label(res.label)), el("b", {}, "picked")),
        res.neighbours.map(n => el("li", { "data-name": n.name, "data-distance": n.distance },
          el("img", { src: `api/embed/image?key=${key}&i=${n.i}`, loading: "lazy" }), el("div", {}, n.name), el("div", {}, label(n.label)), el("div", {}, "distance " + n.distance.toFixed(4))))));
    };
  };
}

window.addEventListener("hashchange", route);
route();
