// Voice4EVs live dashboard: state from /status and /demo/scenarios, refreshed when the
// server-sent event stream (/events) reports OCPP traffic (at most every 400 ms).
"use strict";

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
let state = { charge_points: {} };
let scenarios = [];
let refreshTimer = null;

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

function kw(w) { return w == null ? "–" : (w / 1000).toFixed(1) + " kW"; }
function kwh(wh) { return wh == null ? "–" : (wh / 1000).toFixed(2) + " kWh"; }

function renderChargers() {
  const cps = Object.values(state.charge_points || {});
  const active = scenarios.flatMap((s) => (s.active_on || []).map((cp) => ({ cp, name: s.name })));
  $("#summary").textContent = `${state.total_online ?? 0} online · ${state.total_connected ?? 0} connected · ${cps.length} known`;
  $("#chargers").innerHTML = cps.map((cp) => {
    const faults = active.filter((a) => a.cp === cp.cp_id).map((a) => `<span class="pill offline">${esc(a.name)}</span>`).join(" ");
    const rows = cp.connectors.filter((c) => c.connector_id > 0).map((c) => `
      <tr data-connector="${c.connector_id}">
        <td>${c.connector_id}</td>
        <td class="status status-${esc(c.status)}">${esc(c.status)}</td>
        <td class="${c.error_code !== "NoError" ? "error" : ""}">${esc(c.error_code)}</td>
        <td>${kw(c.meter.power_w)}${c.meter.power_offered_w ? " / " + kw(c.meter.power_offered_w) : ""}</td>
        <td>${kwh(c.meter.energy_wh)}</td>
        <td>${c.transaction_id ?? "–"}</td>
      </tr>`).join("");
    const txs = (cp.active_transactions || []).map((t) => `#${t.transaction_id} ${esc(t.id_tag)} ${kwh(t.energy_wh)}`).join(", ");
    return `<div class="charger" data-cp="${esc(cp.cp_id)}">
      <h3>${esc(cp.cp_id)} <span class="pill ${cp.online ? "online" : "offline"}">${cp.online ? "online" : "offline"}</span> ${faults}</h3>
      <div class="meta">${esc(cp.boot.vendor || "")} ${esc(cp.boot.model || "")} · fw ${esc(cp.boot.firmware_version || "?")} ·
        heartbeat ${cp.heartbeat_interval}s · last seen ${esc(cp.last_seen || "never")}${txs ? " · active: " + txs : ""}</div>
      <table><thead><tr><th>#</th><th>status</th><th>error</th><th>power</th><th>energy</th><th>tx</th></tr></thead><tbody>${rows}</tbody></table>
    </div>`;
  }).join("") || "<p class=meta>No charger has connected yet.</p>";
  for (const id of ["#scenario-cp", "#command-cp"]) {
    const select = $(id);
    const current = select.value;
    select.innerHTML = cps.map((cp) => `<option>${esc(cp.cp_id)}</option>`).join("");
    if (cps.some((cp) => cp.cp_id === current)) select.value = current;
  }
}

function renderScenarios() {
  const select = $("#scenario-name");
  if (!select.options.length) {
    select.innerHTML = scenarios.map((s) => `<option value="${esc(s.name)}">${esc(s.title)}</option>`).join("");
  }
  const runs = scenarios.flatMap((s) => (s.runs || []).map((r) => ({ ...r, title: s.title })));
  runs.sort((a, b) => (a.history.at(-1)?.at || "").localeCompare(b.history.at(-1)?.at || ""));
  $("#scenarios").innerHTML = runs.slice(-6).reverse().map((r) =>
    `<div class="scenario" data-scenario="${esc(r.scenario)}">${esc(r.cp_id)}: ${esc(r.title)} — <span class="phase-${esc(r.phase)}">${esc(r.phase)}</span></div>`).join("");
}

async function refresh() {
  refreshTimer = null;
  const [status, demo] = await Promise.all([api("GET", "/status"), api("GET", "/demo/scenarios")]);
  if (status.ok) state = status.data;
  if (demo.ok) scenarios = demo.data.scenarios;
  renderChargers();
  renderScenarios();
}

function scheduleRefresh() {
  if (!refreshTimer) refreshTimer = setTimeout(refresh, 400);
}

function addLog(m) {
  const li = document.createElement("li");
  li.className = `${m.direction} ${m.type === "error" ? "error" : ""}`;
  const route = m.direction === "in" ? `${m.cp_id} → CSMS` : `CSMS → ${m.cp_id}`;
  li.textContent = `${m.at.slice(11, 23)} ${route} ${m.type} ${m.action ?? ""} ${JSON.stringify(m.payload)}`;
  const log = $("#log");
  log.prepend(li);
  while (log.children.length > 200) log.lastChild.remove();
}

function connectEvents() {
  const source = new EventSource("/events");
  source.onopen = () => { $("#stream").className = "pill on"; };
  source.onerror = () => { $("#stream").className = "pill off"; };
  source.addEventListener("message", (e) => { addLog(JSON.parse(e.data)); scheduleRefresh(); });
}

function show(result) {
  $("#answer").textContent = `${result.status} ${JSON.stringify(result.data, null, 1)}`;
  scheduleRefresh();
}

function command(name, body) {
  return api("POST", `/commands/${name}/${encodeURIComponent($("#command-cp").value)}`, body).then(show);
}

$("#scenario-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  show(await api("POST", `/demo/trigger/${$("#scenario-name").value}`, { cp_id: $("#scenario-cp").value }));
});
$("#clear").addEventListener("click", async () => show(await api("POST", "/demo/clear")));
for (const button of document.querySelectorAll("button[data-cmd]")) {
  button.addEventListener("click", () => command(button.dataset.cmd, JSON.parse(button.dataset.body)));
}
$("#remote-start").addEventListener("click", () => command("remote_start", { id_tag: $("#id-tag").value, connector_id: 1 }));
$("#remote-stop").addEventListener("click", () => {
  const cp = state.charge_points[$("#command-cp").value];
  const tx = cp && cp.active_transactions[0];
  if (tx) command("remote_stop", { transaction_id: tx.transaction_id });
  else show({ status: "-", data: { message: "no active transaction" } });
});
$("#send-list").addEventListener("click", () => command("send_local_list", { id_tag: $("#id-tag").value, status: "Accepted" }));
$("#change-cfg").addEventListener("click", () => command("change_configuration", { key: $("#cfg-key").value, value: $("#cfg-value").value }));

refresh();
connectEvents();
