// The operators' dashboard (dashboard.html): history from the API, live events through
// the bridge's own client, stats polled.
import { connect } from "/client.js";

const POLL_MS = 5000, MAX_FEED = 200, MAX_SEEN = 5000;
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.hash.slice(1)).get("token");
addEventListener("hashchange", () => location.reload());

// Every element is made here. Event text only ever goes in as text nodes, never as HTML.
function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") el.textContent = v;
    else if (k.startsWith("--")) el.style.setProperty(k, v);
    else el.setAttribute(k, v);
  }
  el.append(...kids);
  return el;
}

const nf = new Intl.NumberFormat();
const fmtTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const fmtDay = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
function when(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts ?? "");
  return d.toDateString() === new Date().toDateString() ? fmtTime.format(d) : `${fmtDay.format(d)} ${fmtTime.format(d)}`;
}
const HUES = { reserva: 212, servicio: 172, calificacion: 45, cliente: 140, proveedor: 270, pago: 95, dashboard: 188,
  nueva_solicitud: 320, nueva_reserva: 335, reserva_confirmada: 350 };
function hue(type) {
  const key = type.split(":")[0];
  if (Object.hasOwn(HUES, key)) return String(HUES[key]);
  let x = 7;
  for (const c of key) x = (x * 31 + c.codePointAt(0)) % 360;
  return String(x);
}
function audience(a) {
  if (a?.kind === "role") return ["role", `role: ${a.role}`];
  if (a?.kind === "user") return ["user", `user: ${a.user}`];
  if (a?.kind === "channel") return ["channel", `channel: ${a.channel}`];
  return ["all", a?.kind === "all" ? "everyone" : String(a?.kind)];
}

const seen = new Set(), seenOrder = [];
let lastEventAt = 0, counts = new Map(), snapshotFromEvent = false, buffered = null, historyLoaded = false, loads = 0;
// The bridge's catalog (from its stats) and its untyped counts: a type outside the catalog,
// or one whose data did not fit it, was delivered as sent, and is shown apart.
let catalog = null, untyped = new Map();
const isUntyped = (type) => catalog !== null && !catalog.has(type);
// resumable: the client got an event over the socket, so after a reconnect it resumes from it.
let bridge = null, connected = false, resumable = false, retryAt = 0, stopped = false;
const prevNums = new Map();

function setPill(id, state, ...content) { $(id).dataset.state = state; $(id).replaceChildren(...content); }
function setWs(state) {
  const wait = Math.ceil((retryAt - Date.now()) / 1000);
  if (state === "reconnecting" && wait < 1) return setPill("ws", "connecting", "reconnecting…");
  setPill("ws", state, { connected: "connected", refused: "token refused", reconnecting: `reconnecting in ${wait} s` }[state]);
}
function refuse(why) {
  stopped = true;
  bridge?.close();
  setWs("refused");
  $("gate-title").textContent = "The token was refused";
  $("gate-why").textContent = `${why || "It has expired, or was made for another run of the bridge."} Get a fresh link.`;
  $("board").hidden = $("broker").hidden = $("conns").hidden = true;
  $("gate").hidden = false;
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  return { status: r.status, ok: r.ok, body: await r.json().catch(() => null) };
}
async function fetchHistory() {
  const r = await api("/api/dashboard/history");
  if (r.status === 401) refuse(r.body?.error && `The bridge says: ${r.body.error}.`);
  if (!r.ok || !Array.isArray(r.body)) throw new Error(`history: HTTP ${r.status}`);
  return r.body;
}

// The feed
function item(ev, live) {
  const [kind, text] = audience(ev.audience);
  const iso = String(ev.timestamp ?? "");
  return h("li", { class: live ? "new" : "", "data-id": ev.id, "data-type": ev.type, "--h": hue(ev.type) },
    h("details", {},
      h("summary", {},
        h("span", { class: "dot", "aria-hidden": "true" }),
        h("span", { class: "type", text: ev.type },
          ...(isUntyped(ev.type) ? [h("small", { class: "untyped", text: " untyped", title: "not in the bridge's catalog: delivered as sent" })] : [])),
        h("span", { class: `badge ${kind}`, text, title: text }),
        h("span", { class: "preview", text: String(JSON.stringify(ev.data)).slice(0, 300) }),
        h("time", { datetime: iso, title: iso, text: when(iso) })),
      h("div", { class: "payload" },
        h("div", { class: "meta", text: `id ${ev.id} · ${iso} · ${text}` }),
        h("pre", { text: JSON.stringify(ev.data ?? null, null, 2) }))));
}
function addEvent(ev, live) {
  if (typeof ev?.id !== "string" || typeof ev.type !== "string" || seen.has(ev.id)) return;
  seen.add(ev.id);
  if (seenOrder.push(ev.id) > MAX_SEEN) seen.delete(seenOrder.shift());
  lastEventAt = Date.now();
  buffered?.push(ev);
  const feed = $("feed");
  feed.prepend(item(ev, live));
  while (feed.childElementCount > MAX_FEED) feed.lastElementChild.remove();
  tick();
  if (live) {
    counts.set(ev.type, (counts.get(ev.type) ?? 0) + 1);
    if (isUntyped(ev.type)) untyped.set(ev.type, (untyped.get(ev.type) ?? 0) + 1);
    renderCounts();
  }
  // As the bridge does: the snapshot is the latest dashboard:update for everyone.
  if (ev.type === "dashboard:update" && ev.audience?.kind === "all") {
    snapshotFromEvent = true;
    renderSnapshot(ev.data, ev.timestamp);
  }
}
function showHistory(events) {
  $("feed").replaceChildren();
  seen.clear();
  seenOrder.length = 0;
  for (const ev of events) addEvent(ev, false);
  historyLoaded = true;
}
async function reloadHistory() {
  // Fetched while the socket is up: the history holds what came before, and the live events
  // that arrive meanwhile are kept for after it. Only the latest of overlapping loads counts.
  const load = ++loads;
  buffered = [];
  historyLoaded = false;
  try {
    const events = await fetchHistory();
    if (load === loads) showHistory([...events, ...buffered]);
  } catch (e) {
    console.warn("could not load the history", e);
  }
  if (load === loads) buffered = null;
}

// Cards
function bars(listId, entries, key, notes = new Map()) {
  const max = Math.max(1, ...entries.map(([, n]) => n));
  $(listId).replaceChildren(...entries.map(([name, n]) =>
    h("li", { [key]: name, "--h": key === "data-type" ? hue(name) : "265" },
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "name", text: name, title: notes.has(name) ? `${name}: ${notes.get(name)}` : name },
        ...(notes.has(name) ? [h("small", { class: "untyped", text: ` ${notes.get(name)}` })] : [])),
      h("span", { class: "bar", "aria-hidden": "true" }, h("i", { "--w": `${(100 * n) / max}%` })),
      h("span", { class: "n", text: nf.format(n) }))));
}
function renderCounts() {
  const entries = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const notes = new Map([...untyped].filter(([, n]) => n > 0).map(([type, n]) =>
    [type, n === counts.get(type) ? "untyped" : `${nf.format(n)} untyped`]));
  bars("types", entries, "data-type", notes);
  $("types-total").textContent = `${nf.format(entries.reduce((sum, [, n]) => sum + n, 0))} since bridge start`;
}
function bigNumber(path, value, name) {
  const big = h("span", { class: "big", text: nf.format(value) });
  if (prevNums.has(path) && prevNums.get(path) !== value) big.classList.add("changed");
  prevNums.set(path, value);
  return h("div", { class: "stat", "data-key": path }, big, h("span", { class: "lbl", text: name }));
}
function renderSnapshot(data, ts) {
  $("snap-time").textContent = ts ? `updated ${when(ts)}` : "";
  const groups = [], loose = [];
  for (const [key, value] of Object.entries(data ?? {})) {
    if (typeof value === "number") loose.push(bigNumber(key, value, key));
    if (!value || typeof value !== "object") continue;
    const nums = Object.entries(value).filter(([, v]) => typeof v === "number");
    if (!nums.length) continue;
    const pct = value.total > 0 && typeof value.activos === "number" ? Math.min(100, (100 * value.activos) / value.total) : null;
    const lbl = (k) => (k === "activos" && pct != null ? `activos · ${Math.round(pct)}%` : k);
    groups.push(h("section", { "data-key": key },
      h("h3", { text: key.replace(/^./, (c) => c.toUpperCase()) }),
      h("div", { class: "nums" }, ...nums.map(([k, v]) => bigNumber(`${key}.${k}`, v, lbl(k)))),
      ...(pct == null ? [] : [h("div", { class: "ratio", "aria-hidden": "true" }, h("i", { "--w": `${pct}%` }))])));
  }
  if (loose.length) groups.push(h("section", {}, h("h3", { text: "Other" }), h("div", { class: "nums" }, ...loose)));
  $("snap").replaceChildren(...(groups.length ? groups : [h("p", { class: "muted", text: "No numbers in the latest update." })]));
}

// Who is online on every instance sharing the RabbitMQ: users by role and by channel.
function renderPresence(p) {
  if (!p) return;
  const users = p.users.length + (p.truncated ? "+" : "");
  const instances = p.instances.length === 1 ? "1 instance" : `${p.instances.length} instances`;
  $("presence-info").textContent =
    `${users} users, ${nf.format(p.connections)} connections on ${instances}`;
  const byUsers = (groups) => Object.entries(groups)
    .map(([name, g]) => [name, g.users.length + g.anonymous]).sort((a, b) => b[1] - a[1]);
  bars("presence-roles", byUsers(p.roles), "data-role");
  bars("presence-channels", byUsers(p.channels).slice(0, 20), "data-channel");
}

async function poll() {
  if (stopped) return;
  // A history that failed to load (say a 429) is tried again while the socket is up.
  if (connected && !historyLoaded && buffered === null) reloadHistory();
  const [health, stats, presence] = await Promise.allSettled(
    [api("/api/health"), api("/api/dashboard/stats"), api("/api/presence")]);
  renderPresence(presence.value?.ok && presence.value.body);
  const hb = health.value?.body;
  if (typeof hb?.broker === "string") {
    setPill("broker", hb.broker, "broker ", h("b", { text: hb.broker }));
    $("instance").textContent = document.title = `${hb.instance}`;
    document.title += " · event-bridge";
  } else {
    setPill("broker", "unreachable", "bridge ", h("b", { text: "unreachable" }));
  }
  const s = stats.value?.ok && stats.value.body;
  if (!s) return;
  const total = s.connections?.total ?? 0, word = total === 1 ? " connection" : " connections";
  for (const id of ["conns", "conn-total"]) $(id).replaceChildren(h("b", { text: nf.format(total) }), word);
  bars("roles", Object.entries(s.connections?.byRole ?? {}).sort((a, b) => b[1] - a[1]), "data-role");
  counts = new Map(Object.entries(s.events?.byType ?? {}));
  untyped = new Map(Object.entries(s.events?.untypedByType ?? {}));
  catalog = Array.isArray(s.catalog) ? new Set(s.catalog) : null;
  renderCounts();
  if (!snapshotFromEvent && s.dashboard) renderSnapshot(s.dashboard, null);
}

// The WebSocket, through the bridge's client: it reconnects with backoff, pings, and resumes
// after the last event it got. The token goes in its first message, so it stays out of URLs,
// and a refused one closes the socket with 4401 instead of failing like an unreachable bridge.
function listen() {
  bridge = connect("/ws", { token, tokenIn: "message" });
  bridge.on("bridge:welcome", () => {
    connected = true;
    setWs("connected");
    // With no event to resume from (at the start, or a drop before any live event), the
    // client only gets what comes next: the history fills in what came before.
    if (!resumable || !historyLoaded) reloadHistory();
    poll();
  });
  bridge.on("bridge:disconnected", ({ delay }) => {
    connected = false;
    retryAt = Date.now() + delay;
    setWs("reconnecting");
  });
  bridge.on("bridge:unauthorized", ({ reason }) => refuse(reason && `The bridge says: ${reason}.`));
  bridge.on("bridge:reset", reloadHistory);
  bridge.on("bridge:error", (msg) => console.warn("bridge:error", msg));
  bridge.on("*", (msg) => {
    if (msg.type.startsWith("bridge:") || typeof msg.id !== "string") return;
    resumable = true;
    addEvent(msg, true);
  });
}
function tick() {
  $("clock").textContent = fmtTime.format(new Date());
  if ($("ws").dataset.state === "reconnecting") setWs("reconnecting");
  const ago = Math.round((Date.now() - lastEventAt) / 1000);
  $("feed-info").textContent = lastEventAt ? `last event ${ago < 2 ? "just now" : `${ago} s ago`} · ${$("feed").childElementCount} shown` : "";
}

tick();
setInterval(tick, 1000);
if (token) {
  $("board").hidden = false;
  poll();
  setInterval(poll, POLL_MS);
  listen();
} else {
  $("gate").hidden = false;
  $("broker").hidden = $("conns").hidden = true;
  setPill("ws", "disconnected", "no token");
}
