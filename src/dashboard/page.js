// tether's dashboard: polls GET /status, renders pools, backends and routes, and calls the
// admin API for drain / enable / disable. No dependencies; every value is written as text.
"use strict";

const HISTORY = 60;
const history = new Map(); // "pool/id" -> recent states
let previous = null; // { at, requests: Map("pool/id" -> count) }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}

function seconds(ms) {
  return ms < 10000 ? (ms / 1000).toFixed(1) + " s" : Math.round(ms / 1000) + " s";
}

function drainText(b) {
  if (!b.drain) return "";
  const last = b.drain.last_pinned_ms_ago == null
    ? "no pinned client since it began"
    : "pinned client " + seconds(b.drain.last_pinned_ms_ago) + " ago";
  return seconds(b.drain.deadline_in_ms) + " to deadline, " + last;
}

async function act(pool, id, action) {
  const msg = document.getElementById("message");
  try {
    const resp = await fetch(`/pools/${encodeURIComponent(pool)}/backends/${encodeURIComponent(id)}/${action}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    const body = await resp.json().catch(() => ({}));
    msg.textContent = resp.ok
      ? `${pool}/${id}: ${action} -> ${body.state}`
      : `${pool}/${id}: ${action} refused (${resp.status}): ${body.error || ""}`;
  } catch (e) {
    msg.textContent = `${pool}/${id}: ${action} failed: ${e}`;
  }
  refresh();
}

function renderListeners(listeners) {
  const box = document.getElementById("listeners");
  box.replaceChildren();
  const names = Object.keys(listeners || {}).sort();
  if (!names.some((n) => listeners[n].routes.length)) return;
  box.append(el("h2", {}, "Routes"));
  const table = el("table", {}, el("tr", {}, ...["listener", "route", "host", "path prefix", "header", "method", "pool", "requests"].map((h) => el("th", {}, h))));
  for (const name of names) {
    const l = listeners[name];
    for (const r of l.routes) {
      const header = r.header ? `${r.header.name}: ${r.header.value}` : "";
      table.append(el("tr", { "data-route": `${name}/${r.name}` },
        el("td", {}, name), el("td", {}, r.name), el("td", {}, r.host || "any"),
        el("td", {}, r.path_prefix || "any"), el("td", {}, header || "any"),
        el("td", {}, r.method || "any"), el("td", {}, r.pool), el("td", { class: "num" }, r.requests)));
    }
    table.append(el("tr", {}, el("td", {}, name), el("td", {}, "(no match)"), el("td", {}, ""), el("td", {}, ""),
      el("td", {}, ""), el("td", {}, ""), el("td", {}, l.pool || "404"), el("td", {}, "")));
  }
  box.append(table);
}

function renderPools(pools, now) {
  const box = document.getElementById("pools");
  box.replaceChildren();
  const counts = new Map();
  const dt = previous ? (now - previous.at) / 1000 : 0;
  for (const name of Object.keys(pools).sort()) {
    box.append(el("h2", {}, "Pool " + name));
    const heads = ["backend", "state", "weight", "in flight", "req/s", "2xx / 4xx / 5xx", "errors", "pins / redispatches", "drain", "history", ""];
    const table = el("table", {}, el("tr", {}, ...heads.map((h) => el("th", {}, h))));
    for (const b of pools[name].backends) {
      const key = `${name}/${b.id}`;
      counts.set(key, b.requests);
      const before = previous && previous.requests.get(key);
      const rate = dt > 0 && before != null ? ((b.requests - before) / dt).toFixed(1) : "";
      const past = history.get(key) || [];
      past.push(b.state);
      if (past.length > HISTORY) past.shift();
      history.set(key, past);
      const strip = el("span", { class: "history" }, ...past.map((s) => el("span", { class: s, title: s })));
      const buttons = el("span", {}, ...["drain", "enable", "disable"].map((a) =>
        el("button", { onclick: () => act(name, b.id, a), "data-action": a }, a)));
      const r = b.responses;
      table.append(el("tr", { "data-backend": key },
        el("td", {}, b.id, el("br"), el("small", {}, b.addr)),
        el("td", {}, el("span", { class: "state " + b.state, "data-state": b.state }, b.state)),
        el("td", { class: "num" }, b.weight), el("td", { class: "num" }, b.in_flight),
        el("td", { class: "num" }, rate), el("td", { class: "num" }, `${r[1]} / ${r[3]} / ${r[4]}`),
        el("td", { class: "num" }, `${b.connect_errors} / ${b.timeouts} / ${b.upstream_errors}`),
        el("td", { class: "num" }, `${b.pins} / ${b.redispatches}`),
        el("td", { class: "wrap" }, drainText(b)), el("td", {}, strip), el("td", {}, buttons)));
    }
    box.append(table);
  }
  previous = { at: now, requests: counts };
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const resp = await fetch("/status", { cache: "no-store" });
    if (!resp.ok) throw new Error(`GET /status: ${resp.status}`);
    const status = await resp.json();
    const now = Date.now();
    renderListeners(status.listeners);
    renderPools(status.pools || {}, now);
    error.style.display = "none";
    document.getElementById("meta").textContent = "updated " + new Date(now).toLocaleTimeString();
  } catch (e) {
    error.textContent = "admin API unreachable: " + e.message;
    error.style.display = "block";
  }
}

refresh();
setInterval(refresh, 1000);
