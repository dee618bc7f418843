// Voice4EVs live dashboard.
//
// State is pushed by the server over server-sent events (/events): `state` whenever a
// charger's state changes, by messages or by time alone (a silent charger turns
// "unresponsive" within its heartbeat tolerance), and `message` for every OCPP message.
// Power history (/chargers/{id}/meter_history), the diagnosis, tickets, id tags and the
// message log's history are fetched from the REST API. Charts are drawn with uPlot,
// vendored in /static/vendor/uplot (see docs/dashboard.md). Every write is a same-origin
// fetch with a JSON body and `Content-Type: application/json`.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const HISTORY_MINUTES = 30;
const LOG_PAGE = 40;
const LOG_MAX = 2000;
const SLOW_RATIO = 0.25;

const model = {
  state: null,            // the last `state` event
  catalog: [],            // scenario specs from /demo/scenarios
  history: {},            // cp_id -> {connector_id: [samples]}
  diagnosis: {},          // cp_id -> {data, at, busy, error, key}
  tickets: [],
  tags: { list_version: 0, id_tags: [] },
};
const charts = {};        // "cp|connector" -> uPlot
window.v4e = { model, charts, renderDiagnosis: (cpId) => renderDiagnosis(cpId) };

// -- REST ----------------------------------------------------------------------------------

async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  try {
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, data };
  } catch (err) {
    return { ok: false, status: 0, data: { error: "network", message: String(err) } };
  }
}

function show(label, result) {
  $("#answer").textContent = `${label}: ${result.status} ${JSON.stringify(result.data, null, 2)}`;
  $("#answer").className = result.ok ? "ok" : "bad";
  return result;
}

// -- formatting ----------------------------------------------------------------------------

const kw = (w) => (w == null ? "–" : `${(w / 1000).toFixed(1)} kW`);
const kwh = (wh) => (wh == null ? "–" : `${(wh / 1000).toFixed(2)} kWh`);
const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "never");
const chargerIds = () => (model.state?.charge_points || []).map((cp) => cp.cp_id);
const charger = (id) => (model.state?.charge_points || []).find((cp) => cp.cp_id === id);

function fillSelect(select, values, { keep = true, first = null } = {}) {
  const current = select.value;
  const options = (first ? [`<option value="">${esc(first)}</option>`] : []).concat(
    values.map((v) => (Array.isArray(v) ? `<option value="${esc(v[0])}">${esc(v[1])}</option>` : `<option>${esc(v)}</option>`)));
  const html = options.join("");
  if (select.dataset.html !== html) {
    select.innerHTML = html;
    select.dataset.html = html;
    if (keep && [...select.options].some((o) => o.value === current)) select.value = current;
  }
}

// -- chargers ------------------------------------------------------------------------------

function renderState() {
  const st = model.state;
  if (!st) return;
  $("#summary").textContent = `${st.total_online} online · ${st.total_connected} connected · ${st.total_known} known`;
  const root = $("#chargers");
  if (!st.charge_points.length) {
    root.innerHTML = "<p class=meta>No charger has connected yet.</p>";
  } else {
    $(":scope > p", root)?.remove();
  }
  for (const cp of st.charge_points) renderCharger(cp);
  for (const card of $$(".charger", root)) {
    if (!charger(card.dataset.cp)) card.remove();
  }
  const ids = chargerIds();
  fillSelect($("#scenario-cp"), ids);
  fillSelect($("#command-cp"), ids);
  fillSelect($("#log-cp"), ids, { first: "all chargers" });
  renderScenarioParams();
}

function chargerCard(cp) {
  let card = $(`.charger[data-cp="${CSS.escape(cp.cp_id)}"]`);
  if (card) return card;
  card = document.createElement("article");
  card.className = "charger";
  card.dataset.cp = cp.cp_id;
  card.setAttribute("aria-label", `Charger ${cp.cp_id}`);
  card.innerHTML = `
    <h3><span class="cp-name">${esc(cp.cp_id)}</span> <span class="link pill"></span> <span class="badges"></span></h3>
    <div class="meta cp-meta"></div>
    <div class="connectors"></div>
    <div class="panels">
      <section class="agent" aria-label="Diagnosis of ${esc(cp.cp_id)}">
        <h4>What the agent sees <button type="button" class="diag-refresh" aria-label="Refresh diagnosis of ${esc(cp.cp_id)}">Refresh</button></h4>
        <div class="diagnosis meta">not asked yet</div>
      </section>
      <details class="runs"><summary>Scenario history</summary><ol class="run-list"></ol></details>
      <details class="tickets"><summary>Tickets</summary><ul class="ticket-list"></ul></details>
    </div>`;
  $("#chargers").append(card);
  return card;
}

function connectorBox(card, cp, c) {
  let box = $(`.connector[data-connector="${c.connector_id}"]`, card);
  if (box) return box;
  box = document.createElement("div");
  box.className = "connector";
  box.dataset.connector = c.connector_id;
  const who = `connector ${c.connector_id} of ${cp.cp_id}`;
  box.innerHTML = `
    <div class="conn-head"><strong>Connector ${c.connector_id}</strong> <span class="status"></span> <span class="errcode"></span></div>
    <div class="conn-meter meta"></div>
    <div class="chart" role="img" aria-label="Power and energy of ${esc(who)}"></div>
    <p class="chart-caption meta"></p>
    <div class="buttons conn-buttons">
      <button type="button" data-act="start" aria-label="Remote start on ${esc(who)}">Start</button>
      <button type="button" data-act="stop" aria-label="Remote stop on ${esc(who)}">Stop</button>
      <button type="button" data-act="unlock" aria-label="Unlock ${esc(who)}">Unlock</button>
      <button type="button" data-act="inoperative" aria-label="Make ${esc(who)} inoperative">Inoperative</button>
      <button type="button" data-act="operative" aria-label="Make ${esc(who)} operative">Operative</button>
    </div>`;
  const boxes = $(".connectors", card);
  const after = $$(".connector", boxes).find((b) => Number(b.dataset.connector) > c.connector_id);
  boxes.insertBefore(box, after || null);
  return box;
}

function setHTML(el, html) {
  if (el.dataset.html !== html) {
    el.innerHTML = html;
    el.dataset.html = html;
  }
}

function renderCharger(cp) {
  const card = chargerCard(cp);
  card.classList.toggle("is-online", cp.link === "online");
  card.classList.toggle("is-down", cp.link !== "online");
  const pill = $(".link", card);
  pill.className = `link pill ${cp.link}`;
  pill.textContent = cp.link;
  pill.title = cp.link === "unresponsive"
    ? `socket open but silent since ${clock(cp.last_seen)} (more than ${cp.heartbeat_interval * model.state.offline_tolerance} s)`
    : cp.link === "offline" ? `disconnected at ${clock(cp.disconnected_at)}` : `last message ${clock(cp.last_seen)}`;
  const runs = cp.scenario_runs || [];
  setHTML($(".badges", card), runs.filter((r) => r.active).map((r) =>
    `<span class="badge scenario phase-${esc(r.phase)}" title="${esc(r.title)}: ${esc(r.phase)}">${esc(r.scenario)}</span>`).join(" "));
  const txs = cp.active_transactions || [];
  setHTML($(".cp-meta", card), `${cp.ocpp_version ? `<span class="ocpp-version">OCPP ${esc(cp.ocpp_version)}</span> · ` : ""}${esc(cp.boot.vendor || "")} ${esc(cp.boot.model || "")} · fw ${esc(cp.boot.firmware_version || "?")} ·
    heartbeat ${cp.heartbeat_interval} s · last seen ${esc(clock(cp.last_seen))}`);
  for (const c of cp.connectors.filter((c) => c.connector_id > 0)) {
    const box = connectorBox(card, cp, c);
    const status = $(".status", box);
    status.className = `status status-${c.status}`;
    status.textContent = c.status;
    const err = $(".errcode", box);
    err.className = `errcode ${c.error_code !== "NoError" ? "error" : ""}`;
    err.textContent = c.error_code !== "NoError" ? `${c.error_code}${c.info ? ` (${c.info})` : ""}` : "";
    const tx = txs.find((t) => t.connector_id === c.connector_id);
    const offered = c.meter.power_offered_w ?? null;
    setHTML($(".conn-meter", box), `${kw(c.meter.power_w)}${offered ? ` of ${kw(offered)} offered` : ""} · ${kwh(c.meter.energy_wh)}` +
      (tx ? ` · session #${tx.transaction_id} (${esc(tx.id_tag)}, ${kwh(tx.energy_wh)})` : ""));
    drawChart(cp, c.connector_id, tx);
  }
  setHTML($(".run-list", card), runs.map((r) => `
    <li class="run" data-scenario="${esc(r.scenario)}"><strong>${esc(r.title)}</strong> <span class="phase phase-${esc(r.phase)}">${esc(r.phase)}</span>
      ${Object.keys(r.params || {}).length ? `<span class="meta">${esc(Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(", "))}</span>` : ""}
      <ol class="timeline">${r.history.map((h) => `<li><time>${esc(clock(h.at))}</time> <span class="phase-${esc(h.phase)}">${esc(h.phase)}</span> <span class="meta">${esc(h.note)}</span></li>`).join("")}</ol>
    </li>`).join("") || "<li class=meta>No scenario has run here.</li>");
  $(".runs summary", card).textContent = `Scenario history (${runs.length})`;
  // A scenario that moved: ask for the diagnosis again (without probes) and the tickets.
  const key = runs.map((r) => `${r.scenario}:${r.phase}`).join(",");
  const diag = model.diagnosis[cp.cp_id];
  if (!diag || diag.key !== key) {
    model.diagnosis[cp.cp_id] = { ...(diag || {}), key };
    stale.diagnosis.add(cp.cp_id);
    scheduleFlush(50);
    if (diag) loadTickets();
  }
  renderTickets(card, cp.cp_id);
}

// -- power chart ---------------------------------------------------------------------------

function sessionSamples(cpId, connectorId, tx) {
  const all = (model.history[cpId] || {})[connectorId] || [];
  if (tx) return all.filter((s) => s.transaction_id === tx.transaction_id);
  const last = all.at(-1);
  return last && last.transaction_id != null ? all.filter((s) => s.transaction_id === last.transaction_id) : all;
}

function drawChart(cp, connectorId, tx) {
  const box = $(`.charger[data-cp="${CSS.escape(cp.cp_id)}"] .connector[data-connector="${connectorId}"]`);
  if (!box) return;
  const holder = $(".chart", box);
  const samples = sessionSamples(cp.cp_id, connectorId, tx);
  const k = `${cp.cp_id}|${connectorId}`;
  const data = [
    samples.map((s) => Date.parse(s.at) / 1000),
    samples.map((s) => (s.power_w == null ? null : s.power_w / 1000)),
    samples.map((s) => (s.offered_w == null ? null : s.offered_w / 1000)),
    samples.map((s) => (s.energy_wh == null ? null : (s.energy_wh - (samples[0].energy_wh ?? 0)) / 1000)),
  ];
  holder.dataset.points = String(samples.length);
  const caption = $(".chart-caption", box);
  if (!samples.length) {
    holder.hidden = true;
    caption.textContent = "No meter values yet.";
    caption.classList.remove("gap");
    return;
  }
  holder.hidden = false;
  const last = samples.at(-1);
  const ratio = last.offered_w ? (last.power_w ?? 0) / last.offered_w : null;
  const slow = ratio != null && last.power_w > 0 && ratio < SLOW_RATIO;
  caption.classList.toggle("gap", slow);
  const what = last.transaction_id != null ? `Session #${last.transaction_id}` : "Last samples";
  caption.textContent = `${what}: ${kw(last.power_w)} delivered` + (last.offered_w ? ` of ${kw(last.offered_w)} offered (${Math.round(100 * ratio)} %)` : "") +
    `, ${kwh(data[3].at(-1) * 1000)} in ${samples.length} samples` + (slow ? " — far below what is offered" : "");
  const width = Math.max(240, holder.clientWidth || box.clientWidth - 16);
  let chart = charts[k];
  if (chart && chart.root.parentNode !== holder) {
    chart.destroy();
    delete charts[k];
    chart = null;
  }
  if (!chart) {
    if (typeof uPlot === "undefined") return;
    chart = new uPlot({
      width, height: 170,
      cursor: { show: true, points: { show: false } },
      legend: { show: true, live: false },
      scales: { x: { time: true }, kw: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] }, kwh: { range: (u, min, max) => [0, Math.max(0.1, max * 1.1)] } },
      axes: [
        { stroke: "#8193a6", grid: { stroke: "#263240" }, ticks: { stroke: "#263240" } },
        { scale: "kw", label: "kW", stroke: "#8193a6", grid: { stroke: "#263240" }, ticks: { stroke: "#263240" }, size: 46 },
        { scale: "kwh", label: "kWh", side: 1, stroke: "#8193a6", grid: { show: false }, size: 50 },
      ],
      series: [
        {},
        { label: "delivered kW", scale: "kw", stroke: "#4aa3ff", width: 2, points: { show: true, size: 5 } },
        { label: "offered kW", scale: "kw", stroke: "#e0a030", width: 1.5, dash: [6, 4], points: { show: false } },
        { label: "energy kWh", scale: "kwh", stroke: "#3fb37f", width: 1.5, points: { show: false } },
      ],
      bands: [{ series: [2, 1], fill: "rgba(229, 83, 75, 0.18)" }],
    }, data, holder);
    charts[k] = chart;
  } else {
    chart.setData(data);
    if (Math.abs(chart.width - width) > 4) chart.setSize({ width, height: 170 });
  }
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  scheduleFlush(200);
  resizeTimer = setTimeout(() => {
    for (const chart of Object.values(charts)) {
      const holder = chart.root.parentNode;
      if (holder && holder.clientWidth) chart.setSize({ width: Math.max(240, holder.clientWidth), height: 170 });
    }
  }, 150);
});

// Power history and automatic diagnoses are fetched only for the chargers on (or near)
// the screen, so a page over a big fleet asks for what it shows; the rest follows on scroll.
const stale = { history: new Set(), diagnosis: new Set() };
let flushTimer = null;

function nearViewport(cpId) {
  const card = $(`.charger[data-cp="${CSS.escape(cpId)}"]`);
  if (!card) return false;
  const r = card.getBoundingClientRect();
  return r.bottom > -window.innerHeight && r.top < 2 * window.innerHeight;
}

function scheduleFlush(delay = 300) {
  if (!flushTimer) flushTimer = setTimeout(flushStale, delay);
}

function flushStale() {
  flushTimer = null;
  for (const cpId of [...stale.history]) {
    if (nearViewport(cpId)) { stale.history.delete(cpId); loadHistory(cpId); }
  }
  for (const cpId of [...stale.diagnosis]) {
    if (nearViewport(cpId)) { stale.diagnosis.delete(cpId); loadDiagnosis(cpId, false); }
  }
}
window.addEventListener("scroll", () => scheduleFlush(200), { passive: true });

function scheduleHistory(cpId) {
  stale.history.add(cpId);
  scheduleFlush();
}

async function loadHistory(cpId) {
  const r = await api("GET", `/chargers/${encodeURIComponent(cpId)}/meter_history?minutes=${HISTORY_MINUTES}`);
  if (!r.ok) return;
  model.history[cpId] = Object.fromEntries(r.data.connectors.map((c) => [c.connector_id, c.samples]));
  const cp = charger(cpId);
  if (!cp) return;
  for (const c of cp.connectors.filter((c) => c.connector_id > 0)) {
    drawChart(cp, c.connector_id, (cp.active_transactions || []).find((t) => t.connector_id === c.connector_id));
  }
}

// -- diagnosis: whatever fields the diagnosis has, newest first ---------------------------------

function actionText(a) {
  if (typeof a === "string") return esc(a);
  if (a.tool) return `<code>${esc(a.tool)}(${esc(JSON.stringify(a.arguments ?? a.args ?? {}))})</code>${a.why ? ` <span class="meta">${esc(a.why)}</span>` : ""}`;
  if (a.path) return `<code>${esc(a.method || "POST")} ${esc(a.path)}${a.body ? " " + esc(JSON.stringify(a.body)) : ""}</code>${a.why ? ` <span class="meta">${esc(a.why)}</span>` : ""}`;
  return `<code>${esc(JSON.stringify(a))}</code>`;
}

function renderDiagnosis(cpId) {
  const card = $(`.charger[data-cp="${CSS.escape(cpId)}"]`);
  const d = model.diagnosis[cpId];
  if (!card || !d) return;
  const el = $(".diagnosis", card);
  if (d.error) { el.innerHTML = `<span class="error">${esc(d.error)}</span>`; return; }
  if (!d.data) { el.textContent = d.busy ? "asking…" : "not asked yet"; return; }
  const x = d.data;
  const findings = x.findings || [];
  const verdict = String(x.verdict || x.status || (x.healthy ? "healthy" : findings.length ? "fault found" : "inconclusive")).replace(/_/g, " ");
  const says = [...new Set([x.say].concat(findings.map((f) => f.say)).filter(Boolean))];
  const say = says.length ? says : findings.map((f) => f.summary).filter(Boolean).slice(0, 1);
  const spoken = new Set(say);
  const top = (x.actions || []).map((a) => `<li>${actionText(a)}</li>`).join("");
  el.innerHTML = `
    <div class="verdict verdict-${esc(String(verdict).replace(/\s+/g, "-"))}"><span class="word">${esc(verdict)}</span> <span class="meta">as of ${esc(clock(x.at || d.at))}${d.busy ? " · asking…" : ""}</span></div>
    ${say.length ? `<blockquote class="say">${say.map((s) => `“${esc(s)}”`).join("<br>")}</blockquote>` : ""}
    ${x.agent_note ? `<p class="note">${esc(x.agent_note)}</p>` : ""}
    ${top ? `<ul class="actions">${top}</ul>` : ""}
    <ul class="findings">${findings.map((f) => `
      <li class="finding" data-code="${esc(f.code)}"><strong>${esc(f.title || f.code)}</strong>${f.connector_id != null ? ` <span class="meta">connector ${f.connector_id}</span>` : ""}
        ${f.summary && !spoken.has(f.summary) ? `<div>${esc(f.summary)}</div>` : ""}
        ${f.agent_note && f.agent_note !== x.agent_note ? `<div class="note">${esc(f.agent_note)}</div>` : ""}
        ${(f.actions || []).length ? `<ul class="actions">${f.actions.map((a) => `<li>${actionText(a)}</li>`).join("")}</ul>` : ""}
        ${(f.cites || f.evidence || []).length ? `<div class="meta">${(f.cites || f.evidence).length} OCPP message(s) as evidence</div>` : ""}
      </li>`).join("")}</ul>
    ${x.checked ? `<div class="meta">checked: ${esc((x.checked || []).join(", "))}</div>` : ""}`;
}

async function loadDiagnosis(cpId, asAgent) {
  const d = (model.diagnosis[cpId] = { ...(model.diagnosis[cpId] || {}), busy: true });
  renderDiagnosis(cpId);
  // The refresh button asks exactly what the agent asks; automatic updates never probe.
  const query = asAgent ? "" : "?probe=false&start_timeout=0";
  const r = await api("GET", `/chargers/${encodeURIComponent(cpId)}/diagnosis${query}`);
  d.busy = false;
  if (r.ok) { d.data = r.data; d.error = null; d.at = new Date().toISOString(); } else d.error = `${r.status} ${r.data.message || r.data.error || ""}`;
  renderDiagnosis(cpId);
}

// -- tickets and id tags --------------------------------------------------------------------

function renderTickets(card, cpId) {
  const mine = model.tickets.filter((t) => t.cp_id === cpId).reverse();
  setHTML($(".ticket-list", card), mine.map((t) =>
    `<li class="ticket"><strong>#${esc(t.ticket_id ?? t.id)}</strong> ${esc(t.summary)} <span class="meta">${esc(t.scenario || "")} · ${esc(clock(t.created_at || t.at))}</span></li>`).join("") ||
    "<li class=meta>No tickets.</li>");
  $(".tickets summary", card).textContent = `Tickets (${mine.length})`;
}

async function loadTickets() {
  const r = await api("GET", "/tickets");
  if (!r.ok) return;
  model.tickets = r.data.tickets;
  for (const card of $$(".charger")) renderTickets(card, card.dataset.cp);
}

async function loadTags() {
  const r = await api("GET", "/id_tags");
  if (!r.ok) return;
  model.tags = r.data;
  $("#tags-meta").textContent = `list version ${r.data.list_version} · unknown tags: ${r.data.unknown_tags}`;
  $("#tag-list").innerHTML = r.data.id_tags.map((t) => `
    <li class="tag" data-tag="${esc(t.id_tag)}"><code>${esc(t.id_tag)}</code> <span class="tag-status tag-${esc(t.status)}">${esc(t.status)}</span>
      <span class="buttons">
        <button type="button" data-tag-act="push" aria-label="Send ${esc(t.id_tag)} to the selected charger's local list">Push to charger</button>
        <button type="button" data-tag-act="delete" aria-label="Delete id tag ${esc(t.id_tag)}">Delete</button>
      </span></li>`).join("") || "<li class=meta>No id tags listed.</li>";
}

// -- message log ----------------------------------------------------------------------------

const log = { entries: [], keys: new Set(), offsets: {}, actions: new Set() };

function decoded(payload) {
  // DataTransfer data that is JSON is shown as JSON, not as an escaped string.
  if (payload && typeof payload.data === "string" && /^\s*[[{]/.test(payload.data)) {
    try { return { value: { ...payload, data: JSON.parse(payload.data) }, decoded: true }; } catch { /* not JSON */ }
  }
  return { value: payload, decoded: false };
}

function addLog(m) {
  const type = m.type || { 2: "call", 3: "result", 4: "error" }[m.message_type];
  const key = `${m.cp_id}|${m.direction}|${type}|${m.unique_id}|${m.at}`;
  if (log.keys.has(key)) return;
  log.keys.add(key);
  if (m.action) log.actions.add(m.action);
  const li = document.createElement("li");
  li.className = `${m.direction} ${type}`;
  li.dataset.cp = m.cp_id;
  li.dataset.action = m.action || "";
  li.dataset.at = m.at;
  li.dataset.key = key;
  const route = m.direction === "in" ? `${m.cp_id} → CSMS` : `CSMS → ${m.cp_id}`;
  const body = decoded(m.payload);
  const brief = JSON.stringify(body.value);
  li.innerHTML = `<details><summary><time datetime="${esc(m.at)}">${esc(m.at.slice(11, 23))}</time> <span class="route">${esc(route)}</span>
    <span class="kind">${esc(type)}</span> <span class="action">${esc(m.action || "")}</span> <span class="brief">${esc(brief.length > 160 ? brief.slice(0, 160) + "…" : brief)}</span></summary>
    <pre class="payload">${esc(JSON.stringify(body.value, null, 2))}</pre>${body.decoded ? '<div class="meta">data is JSON: shown decoded</div>' : ""}</details>`;
  // newest first: insert before the first entry older than this one
  const list = $("#log");
  let index = log.entries.findIndex((e) => e.dataset.at < m.at);
  if (index < 0) index = log.entries.length;
  list.insertBefore(li, log.entries[index] || null);
  log.entries.splice(index, 0, li);
  while (log.entries.length > LOG_MAX) {
    const old = log.entries.pop();
    old.remove();
  }
  applyLogFilter(li);
}

function applyLogFilter(only) {
  const cp = $("#log-cp").value;
  const action = $("#log-action").value;
  for (const li of only ? [only] : log.entries) {
    li.hidden = (cp && li.dataset.cp !== cp) || (action && li.dataset.action !== action);
  }
  if (!only) updateLogMeta();
}

function updateLogMeta() {
  fillSelect($("#log-action"), [...log.actions].sort(), { first: "all actions" });
  const shown = log.entries.filter((li) => !li.hidden).length;
  $("#log-count").textContent = `${shown} shown of ${log.entries.length} loaded`;
}

async function loadOlder(cps) {
  const action = $("#log-action").value;
  await Promise.all(cps.map(async (cp) => {
    const k = `${cp}|${action}`;
    const offset = log.offsets[k] || 0;
    const q = `limit=${LOG_PAGE}&offset=${offset}${action ? `&action=${encodeURIComponent(action)}` : ""}`;
    const r = await api("GET", `/chargers/${encodeURIComponent(cp)}/messages?${q}`);
    if (!r.ok) return;
    log.offsets[k] = offset + r.data.messages.length;
    for (const m of r.data.messages) addLog(m);
  }));
  updateLogMeta();
}

// -- live stream ----------------------------------------------------------------------------

let firstState = true;
function connectEvents() {
  const source = new EventSource("/events?kind=message,state"); // semantic events are for agents
  source.onopen = () => { $("#stream").className = "pill on"; $("#stream").textContent = "live"; };
  source.onerror = () => { $("#stream").className = "pill off"; $("#stream").textContent = "reconnecting"; };
  source.addEventListener("state", (e) => {
    model.state = JSON.parse(e.data);
    renderState();
    if (firstState) {
      firstState = false;
      for (const id of chargerIds()) scheduleHistory(id);
      loadOlder(chargerIds().slice(0, 25));
    }
  });
  source.addEventListener("message", (e) => {
    const m = JSON.parse(e.data);
    addLog(m);
    updateLogMeta();
    if (m.direction === "in" && ["MeterValues", "StartTransaction", "StopTransaction"].includes(m.action)) scheduleHistory(m.cp_id);
    if (m.action === "SendLocalList" && m.type === "result") loadTags();
  });
}

// -- controls -------------------------------------------------------------------------------

function specOf(name) { return model.catalog.find((s) => s.name === name); }

function renderScenarioParams() {
  const spec = specOf($("#scenario-name").value);
  const params = spec?.parameters || {};
  for (const label of $$("#scenario-form [data-param]")) label.hidden = !(label.dataset.param in params);
  const cp = charger($("#scenario-cp").value);
  const ids = (cp?.connectors || []).map((c) => c.connector_id).filter((id) => id > 0);
  fillSelect($("#scenario-connector"), ids.length ? ids.map(String) : ["1"]);
  $("#scenario-help").textContent = spec ? `Driver: “${spec.driver_says}” — ${spec.description} Fix: ${spec.remediation}` : "";
}

async function loadCatalog() {
  const r = await api("GET", "/demo/scenarios");
  if (!r.ok) return;
  model.catalog = r.data.scenarios;
  fillSelect($("#scenario-name"), model.catalog.map((s) => [s.name, s.title]));
  renderScenarioParams();
}

function command(cpId, name, body) {
  return api("POST", `/commands/${name}/${encodeURIComponent(cpId)}`, body).then((r) => show(`${name} ${cpId}`, r));
}

$("#scenario-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("#scenario-name").value;
  const params = specOf(name)?.parameters || {};
  const body = { cp_id: $("#scenario-cp").value };
  if ("connector_id" in params) body.connector_id = Number($("#scenario-connector").value || 1);
  if ("id_tag" in params && $("#scenario-tag").value.trim()) body.id_tag = $("#scenario-tag").value.trim();
  if ("mode" in params) body.mode = $("#scenario-mode").value;
  show(`trigger ${name}`, await api("POST", `/demo/trigger/${encodeURIComponent(name)}`, body));
});
$("#scenario-name").addEventListener("change", renderScenarioParams);
$("#scenario-cp").addEventListener("change", renderScenarioParams);
$("#clear").addEventListener("click", async () => show("clear", await api("POST", "/demo/clear")));

for (const button of $$("button[data-cmd]")) {
  button.addEventListener("click", () => command($("#command-cp").value, button.dataset.cmd, JSON.parse(button.dataset.body)));
}
$("#change-cfg").addEventListener("click", () => command($("#command-cp").value, "change_configuration", { key: $("#cfg-key").value, value: $("#cfg-value").value }));

$("#chargers").addEventListener("click", (e) => {
  const button = e.target.closest("button");
  if (!button) return;
  const card = button.closest(".charger");
  const cpId = card.dataset.cp;
  if (button.classList.contains("diag-refresh")) { loadDiagnosis(cpId, true); return; }
  const connectorId = Number(button.closest(".connector")?.dataset.connector);
  const act = button.dataset.act;
  if (act === "start") command(cpId, "remote_start", { id_tag: $("#id-tag").value, connector_id: connectorId });
  else if (act === "stop") {
    const tx = (charger(cpId)?.active_transactions || []).find((t) => t.connector_id === connectorId);
    if (tx) command(cpId, "remote_stop", { transaction_id: tx.transaction_id });
    else show(`remote_stop ${cpId}`, { ok: false, status: "-", data: { message: `no session on connector ${connectorId}` } });
  } else if (act === "unlock") command(cpId, "unlock_connector", { connector_id: connectorId });
  else if (act === "inoperative" || act === "operative") {
    command(cpId, "change_availability", { type: act === "inoperative" ? "Inoperative" : "Operative", connector_id: connectorId });
  }
});

$("#tag-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = show("add id tag", await api("POST", "/id_tags", { id_tag: $("#new-tag").value.trim(), status: $("#new-tag-status").value }));
  if (r.ok) $("#new-tag").value = "";
  loadTags();
});
$("#tag-list").addEventListener("click", async (e) => {
  const button = e.target.closest("button[data-tag-act]");
  if (!button) return;
  const tag = model.tags.id_tags.find((t) => t.id_tag === button.closest(".tag").dataset.tag);
  if (!tag) return;
  if (button.dataset.tagAct === "delete") show("delete id tag", await api("DELETE", `/id_tags/${encodeURIComponent(tag.id_tag)}`));
  else await command($("#command-cp").value, "send_local_list", { id_tag: tag.id_tag, status: tag.status });
  loadTags();
});

$("#log-cp").addEventListener("change", () => applyLogFilter());
$("#log-action").addEventListener("change", () => applyLogFilter());
$("#log-older").addEventListener("click", () => {
  const cp = $("#log-cp").value;
  loadOlder(cp ? [cp] : chargerIds().slice(0, 25));
});

loadCatalog();
loadTags();
loadTickets();
setInterval(loadTickets, 10_000);
connectEvents();
