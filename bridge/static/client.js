/**
 * The browser client of event-bridge: live events over one WebSocket that
 * reconnects by itself and resumes where it left off. Where a proxy breaks
 * WebSocket, it reads the same events as Server-Sent Events from `/sse`.
 *
 *     import { connect } from "/client.js";
 *
 *     const bridge = connect("ws://localhost:4000/ws", { token });
 *     const stop = bridge.onReservaNueva((data) => console.log(data.reserva.id));
 *     const leave = bridge.subscribe("order:42", (event) => show(event), { token: orderToken });
 *
 * An ES module with no dependencies and no build step; the bridge fills in
 * its table of event types from its catalog, and serves their types in
 * client.d.ts, beside it. docs/client.md explains its behaviour.
 *
 * @module client
 */

// <event types: filled in from the bridge's catalog when it starts>
/**
 * Every event type of the bridge's catalog, in catalog order: its category
 * and the name of its helper on the client. Other types arrive untyped.
 */
export const EVENT_TYPES = Object.freeze({});
// </event types>

for (const entry of Object.values(EVENT_TYPES)) Object.freeze(entry);

/** The event types `onBusinessEvent` receives. */
const BUSINESS = new Set(
  Object.keys(EVENT_TYPES).filter((type) => EVENT_TYPES[type].category === "business"),
);

/** The seed's names for some helpers: alias → event type. */
const SEED_ALIASES = Object.freeze({ onReservaNueva: "reserva:creada" });

/** The bridge closes with this code when the token is missing, forged or expired. */
const CLOSE_UNAUTHORIZED = 4401;
/** The bridge closes with this code when an open connection's token expires unrefreshed. */
const CLOSE_TOKEN_EXPIRED = 4419;
/** This client closes with this code a socket that went silent. */
const CLOSE_SILENT = 4000;
/** The code reported when a connection failed without a close frame (as browsers do). */
const CLOSE_ABNORMAL = 1006;

const DEFAULTS = Object.freeze({
  token: undefined,
  tokenIn: "query",
  batch: true,
  heartbeat: 15_000,
  minDelay: 500,
  maxDelay: 30_000,
  rememberIds: 1000,
  transport: "auto",
  sseUrl: undefined,
});

const TRANSPORTS = ["auto", "websocket", "sse"];

/**
 * Connect to a bridge. The connection lives until `close()`: when it drops, the
 * client reconnects with exponential backoff and full jitter, asking the
 * bridge for the events it missed (`?after=<last id>`), so handlers see every
 * event once, in order.
 *
 * @param {string} url `ws://host:4000/ws` (`wss://` behind TLS); a path such as
 *   `"/ws"` is taken relative to the page.
 * @param {object} [options]
 * @param {string | (() => string | Promise<string>)} [options.token] The JWT,
 *   or a function giving one, called before every attempt and whenever the
 *   bridge asks for a new one (`bridge:refresh`, before the token expires), so
 *   that short-lived tokens keep a connection open. A string serves until it
 *   expires. Leave it out for an anonymous connection.
 * @param {"query" | "message"} [options.tokenIn="query"] Send the token as
 *   `?token=` or as the first message `{"op": "auth", "token"}`.
 * @param {boolean} [options.batch=true] Let the bridge put events that follow
 *   each other within 100 ms in one frame (`?batch=1`).
 * @param {number} [options.heartbeat=15000] Milliseconds between pings; a socket
 *   silent for two intervals is replaced.
 * @param {number} [options.minDelay=500] First reconnect delay cap, in ms.
 * @param {number} [options.maxDelay=30000] Largest reconnect delay cap, in ms.
 * @param {number} [options.rememberIds=1000] Recent event ids kept to drop duplicates.
 * @param {"auto" | "websocket" | "sse"} [options.transport="auto"] `"auto"` opens
 *   a WebSocket and, when one cannot connect (a proxy that refuses the upgrade),
 *   reads Server-Sent Events for the next attempt; it goes back to WebSocket
 *   whenever a connection that worked drops. The stream always carries the
 *   token as `?token=`.
 * @param {string} [options.sseUrl] The event stream: by default `url` with
 *   `http(s)://` and its path's last segment made `sse` (`/ws` → `/sse`).
 * @returns {import("./client.js").Client} `on`, `onBusinessEvent`, one helper
 *   per event type (`onReservaCreada`, …, and the seed's `onReservaNueva`), `subscribe`
 *   and `close`.
 */
export function connect(url, options = {}) {
  const unknown = Object.keys(options).filter((name) => !(name in DEFAULTS));
  if (unknown.length > 0) {
    const known = Object.keys(DEFAULTS).join(", ");
    throw new TypeError(`connect(): unknown option ${unknown.join(", ")}; known: ${known}`);
  }
  const settings = { ...DEFAULTS };
  for (const [name, value] of Object.entries(options)) {
    if (value !== undefined) settings[name] = value;
  }
  if (settings.tokenIn !== "query" && settings.tokenIn !== "message") {
    throw new TypeError(`connect(): tokenIn must be "query" or "message"`);
  }
  if (!TRANSPORTS.includes(settings.transport)) {
    throw new TypeError(`connect(): transport must be one of ${TRANSPORTS.join(", ")}`);
  }
  const base = socketBase(url);
  const streamBase = settings.sseUrl === undefined ? streamOf(base) : pageUrl(settings.sseUrl);

  // Handlers, by message type; business events have their own set.
  const handlers = new Map();
  const businessHandlers = new Set();

  // The connection.
  let kind = settings.transport === "sse" ? "sse" : "websocket"; // of the next attempt
  let socket = null; // the current WebSocket or EventSource, null between attempts
  let stopped = false; // close() was called, or the token was refused
  let welcomed = false; // the current socket got bridge:welcome
  let failures = 0; // attempts since the last welcome
  let retryTimer;
  let heartbeatTimer;
  let lastMessageAt = 0; // when anything last arrived
  let waitingSince = null; // when a request still unanswered was sent (welcome, pong)

  // What was seen, for resume and to drop duplicates.
  let lastId = null;
  const seen = new Set();

  // Channels, by name: { handlers, token, presence, onPresence, after, active }.
  // `after` is the last event this connection saw while subscribed: where the
  // channel resumes after a reconnect. `active`: the bridge said bridge:subscribed.
  const channels = new Map();

  function open() {
    retryTimer = undefined;
    let token;
    try {
      token = typeof settings.token === "function" ? settings.token() : settings.token;
    } catch (error) {
      token = Promise.reject(error);
    }
    Promise.resolve(token).then(start, (error) => {
      report(error);
      retry(0, `no token: ${error}`);
    });
  }

  function start(token) {
    if (stopped) return;
    if (kind === "sse") {
      // A stream names its channels in its URL, with their tokens.
      subscriptionTokens().then(
        (tokens) => {
          if (!stopped && socket === null) stream(token, tokens);
        },
        (error) => {
          report(error);
          retry(0, `no subscription token: ${error}`);
        },
      );
    } else websocket(token);
  }

  /** [name, token or undefined] for every channel, each token fetched anew. */
  function subscriptionTokens() {
    return Promise.all(
      [...channels].map(([name, channel]) =>
        Promise.resolve(
          typeof channel.token === "function" ? channel.token() : channel.token,
        ).then((token) => [name, token]),
      ),
    );
  }

  function websocket(token) {
    const target = new URL(base);
    if (token && settings.tokenIn === "query") target.searchParams.set("token", token);
    if (settings.batch) target.searchParams.set("batch", "1");
    // Resuming with the request: no live event can pass what the bridge replays.
    if (lastId !== null) target.searchParams.set("after", lastId);
    const ws = new WebSocket(target.href);
    socket = ws;
    welcomed = false;
    lastMessageAt = Date.now();
    waitingSince = lastMessageAt; // for bridge:welcome
    ws.onopen = () => {
      if (token && settings.tokenIn === "message") send(ws, { op: "auth", token });
    };
    ws.onmessage = (message) => {
      if (socket === ws) receive(message.data);
    };
    ws.onclose = (event) => {
      if (socket === ws) lost(event.code, event.reason);
    };
    heartbeatTimer = setInterval(() => beat(ws), settings.heartbeat);
  }

  /**
   * The same events as Server-Sent Events. The browser's own reconnect is not
   * used: this client reconnects as for a WebSocket, with a fresh token, and
   * resumes with `?after=`.
   */
  function stream(token, subscriptions) {
    const target = new URL(streamBase);
    if (token) target.searchParams.set("token", token);
    if (settings.batch) target.searchParams.set("batch", "1");
    if (lastId !== null) target.searchParams.set("after", lastId);
    const named = subscriptions.filter(([, t]) => !t).map(([name]) => name);
    const tokens = subscriptions.filter(([, t]) => t).map(([, t]) => t);
    if (named.length > 0) target.searchParams.set("channels", named.join(","));
    if (tokens.length > 0) target.searchParams.set("channel_tokens", tokens.join(","));
    const source = new EventSource(target.href);
    socket = source;
    welcomed = false;
    lastMessageAt = Date.now();
    waitingSince = lastMessageAt; // for bridge:welcome
    source.onmessage = (message) => {
      if (socket === source) receive(message.data);
    };
    source.onerror = () => {
      if (socket === source) lost(CLOSE_ABNORMAL, "the event stream failed");
    };
    heartbeatTimer = setInterval(() => beat(source), settings.heartbeat);
  }

  /**
   * Every interval: ping, and give up on a socket from which nothing at all came
   * for two intervals while an answer was due. (A request must be outstanding, so
   * that pings delayed by a throttled background tab are not taken for a dead socket.)
   */
  function beat(ws) {
    const now = Date.now();
    const due = waitingSince !== null && now - waitingSince >= settings.heartbeat;
    if (due && now - lastMessageAt >= 2 * settings.heartbeat) {
      const seconds = Math.round((now - lastMessageAt) / 1000);
      lost(CLOSE_SILENT, `no message for ${seconds} s`);
      return;
    }
    if (welcomed && ws instanceof WebSocket) {
      // A stream cannot be pinged: the bridge's keepalive comments reach no script.
      send(ws, { op: "ping" });
      waitingSince ??= now;
    }
  }

  /** One frame: a JSON object, or with batching several separated by "\n". */
  function receive(text) {
    lastMessageAt = Date.now();
    waitingSince = null;
    for (const line of String(text).split("\n")) {
      if (stopped) return;
      if (line.trim() === "") continue;
      let message;
      try {
        message = JSON.parse(line);
      } catch {
        report(new Error(`event-bridge sent something that is not JSON: ${line.slice(0, 80)}`));
        continue;
      }
      if (message !== null && typeof message.type === "string") handle(message);
    }
  }

  function handle(message) {
    if (message.type === "bridge:welcome") {
      welcomed = true;
      failures = 0;
      // Where to resume was in the URL. Without one, live events wait (up to 1 s)
      // for a first message: this ping, whose pong also shows the socket works.
      if (socket instanceof WebSocket) {
        send(socket, { op: "ping" });
        waitingSince = Date.now();
        for (const name of channels.keys()) sendSubscribe(socket, name);
      }
    } else if (message.type === "bridge:subscribed") {
      const channel = channels.get(message.channel);
      if (channel !== undefined) channel.active = true;
    } else if (message.type === "bridge:refused" || message.type === "bridge:unsubscribed") {
      // Refused: asking again at every reconnect would be refused again.
      if (message.type === "bridge:refused" || channels.get(message.channel)?.active) {
        channels.delete(message.channel);
      }
    } else if (message.type === "bridge:join" || message.type === "bridge:leave") {
      const channel = channels.get(message.channel);
      if (channel?.onPresence) call(new Set([channel.onPresence]), message);
    } else if (message.type === "bridge:close") {
      dispatch(message);
      lost(message.code, message.reason); // a stream's close frame
      return;
    } else if (message.type === "bridge:refresh") {
      refresh(socket);
    } else if (message.type === "bridge:reset" && typeof message.latest === "string") {
      // The app reloads its state up to the newest event; resume from there next time.
      lastId = message.latest;
    } else if (!message.type.startsWith("bridge:") && typeof message.id === "string") {
      if (seen.has(message.id)) return;
      remember(message.id);
      lastId = message.id;
      for (const channel of channels.values()) if (channel.active) channel.after = message.id;
      if (message.audience?.kind === "channel") {
        call(channels.get(message.audience.channel)?.handlers, message);
      }
    }
    dispatch(message);
  }

  /** Ask the bridge for a channel's events, and for those missed since `after`. */
  function sendSubscribe(ws, name) {
    const channel = channels.get(name);
    Promise.resolve(typeof channel.token === "function" ? channel.token() : channel.token).then(
      (token) => {
        if (socket !== ws || channels.get(name) !== channel) return;
        const op = { op: "subscribe", channel: name };
        if (token) op.token = token;
        if (channel.after !== null) op.after = channel.after;
        if (channel.presence) op.presence = true;
        send(ws, op);
      },
      report,
    );
  }

  /**
   * Receive the events of `channel` (e.g. `"order:42"`), published to it by the
   * backend (`notifier.publish("order:42", …)`), for as long as the connection
   * lives: after a reconnect the client subscribes again and gets what it missed
   * in the channel (`bridge:subscribed` with `recovered: false` when some are gone:
   * reload what the channel shows). The bridge allows a channel that the
   * connection's token lists (claim `channels`) or for which `options.token` is a
   * subscription token (`issue_subscription_token` in Django); a refusal arrives as
   * `bridge:refused`, and the subscription ends.
   *
   * @param {string} name The channel.
   * @param {(event: object) => void} handler Receives each of its events, whole.
   * @param {object} [options]
   * @param {string | (() => string | Promise<string>)} [options.token] A subscription
   *   token, or a function giving one, called at every (re)subscription: tokens are short-lived.
   * @param {(message: object) => void} [options.onPresence] Receives `bridge:join` and
   *   `bridge:leave` as users come to the channel and go.
   * @returns {() => void} A function that ends the subscription.
   */
  function subscribeTo(name, handler, options = {}) {
    if (typeof name !== "string" || name === "") {
      throw new TypeError("subscribe(channel, handler): channel must be a name such as order:42");
    }
    let channel = channels.get(name);
    const first = channel === undefined;
    if (first) {
      channel = {
        handlers: new Set(),
        token: options.token,
        presence: typeof options.onPresence === "function",
        onPresence: options.onPresence,
        after: null,
        active: false,
      };
      channels.set(name, channel);
    }
    const stop = subscribe(channel.handlers, handler);
    if (first) {
      if (socket instanceof WebSocket && welcomed) sendSubscribe(socket, name);
      else if (socket !== null && !(socket instanceof WebSocket)) reopen();
    }
    return () => {
      stop();
      if (channels.get(name) !== channel || channel.handlers.size > 0) return;
      channels.delete(name);
      if (socket instanceof WebSocket) send(socket, { op: "unsubscribe", channel: name });
      else if (socket !== null) reopen();
    };
  }

  /** A stream's channels are in its URL: open it again, resuming where it stands. */
  function reopen() {
    const source = socket;
    socket = null;
    clearInterval(heartbeatTimer);
    discard(source, 1000, "channels changed");
    for (const channel of channels.values()) channel.active = false;
    open();
  }

  /** The token is about to expire: send a new one on the same socket, if we can get one. */
  function refresh(ws) {
    if (typeof settings.token !== "function") return; // then 4419, and the app decides
    Promise.resolve()
      .then(() => settings.token())
      .then(
        (token) => {
          if (socket === ws && token) send(ws, { op: "auth", token });
        },
        report,
      );
  }

  function remember(id) {
    seen.add(id);
    if (seen.size > settings.rememberIds) seen.delete(seen.values().next().value);
  }

  /** The socket is gone (or given up on): reconnect, unless the token was refused. */
  function lost(code, reason) {
    const ws = socket;
    socket = null;
    if (settings.transport === "auto") {
      // A connection that worked drops: WebSocket again. One that never did: the other.
      kind = welcomed || kind === "sse" ? "websocket" : "sse";
    }
    welcomed = false;
    clearInterval(heartbeatTimer);
    discard(ws, CLOSE_SILENT, reason);
    // Until subscribed again, each channel resumes from the last event seen with it.
    for (const channel of channels.values()) channel.active = false;
    if (stopped) return;
    if (code === CLOSE_TOKEN_EXPIRED && typeof settings.token === "function") {
      retry(code, reason); // a new token comes with the next attempt
      return;
    }
    if (code === CLOSE_UNAUTHORIZED || code === CLOSE_TOKEN_EXPIRED) {
      stopped = true;
      dispatch({ type: "bridge:unauthorized", code, reason });
      return;
    }
    retry(code, reason);
  }

  function retry(code, reason) {
    // Full jitter: anywhere up to the cap, so a restarted bridge is not hit by
    // every client at once.
    const cap = Math.min(settings.maxDelay, settings.minDelay * 2 ** failures);
    const delay = Math.round(Math.random() * cap);
    failures += 1;
    retryTimer = setTimeout(open, delay);
    dispatch({ type: "bridge:disconnected", code, reason, delay });
  }

  function dispatch(message) {
    call(handlers.get(message.type), message);
    if (BUSINESS.has(message.type)) call(businessHandlers, message);
    call(handlers.get("*"), message);
  }

  /**
   * Call `handler` with every event of `type` (e.g. `"reserva:creada"`), or
   * every `bridge:*` message of that type (`"bridge:welcome"`, `"bridge:reset"`,
   * `"bridge:unauthorized"`, …); `"*"` for everything.
   *
   * @param {string} type
   * @param {(message: object) => void} handler Receives the whole event.
   * @returns {() => void} A function that stops the handler.
   */
  function on(type, handler) {
    if (typeof type !== "string") throw new TypeError("on(type, handler): type must be a string");
    if (!handlers.has(type)) handlers.set(type, new Set());
    return subscribe(handlers.get(type), handler);
  }

  /**
   * Call `handler` with every business event (`reserva:creada`, `pago:procesado`, …).
   *
   * @param {(event: object) => void} handler Receives the whole event.
   * @returns {() => void} A function that stops the handler.
   */
  function onBusinessEvent(handler) {
    return subscribe(businessHandlers, handler);
  }

  /** Close the connection for good: no more reconnects, no more events. */
  function close() {
    stopped = true;
    clearTimeout(retryTimer);
    clearInterval(heartbeatTimer);
    const ws = socket;
    socket = null;
    discard(ws, 1000, "client closed");
  }

  // One helper per event type, e.g. onReservaCreada(handler): the handler
  // receives the event's data, and the whole event second.
  const helpers = {};
  for (const [type, { helper }] of Object.entries(EVENT_TYPES)) {
    helpers[helper] = (handler) => on(type, dataOf(handler));
  }
  for (const [alias, type] of Object.entries(SEED_ALIASES)) {
    if (type in EVENT_TYPES) helpers[alias] = (handler) => on(type, dataOf(handler));
  }

  open();
  return Object.freeze({ on, onBusinessEvent, ...helpers, subscribe: subscribeTo, close });
}

function pageUrl(url) {
  const page = globalThis.location?.href;
  return page === undefined ? new URL(url) : new URL(url, page);
}

function socketBase(url) {
  const target = pageUrl(url);
  if (target.protocol === "http:") target.protocol = "ws:";
  if (target.protocol === "https:") target.protocol = "wss:";
  if (target.protocol !== "ws:" && target.protocol !== "wss:") {
    throw new TypeError(`connect(): ${url} is not a ws:// or wss:// URL`);
  }
  return target.href;
}

/**
 * The event stream beside a WebSocket URL: its path's last segment becomes `sse`
 * (`ws://host/ws` → `http://host/sse`, `wss://host/bridge/ws` → `https://host/bridge/sse`).
 */
function streamOf(socketUrl) {
  const target = new URL(socketUrl);
  target.protocol = target.protocol === "wss:" ? "https:" : "http:";
  target.pathname = target.pathname.replace(/\/[^/]*$/, "/sse");
  target.search = "";
  return target;
}

function subscribe(set, handler) {
  if (typeof handler !== "function") throw new TypeError("the handler must be a function");
  // Each subscription is its own entry, so the same function may be added twice.
  const entry = (message) => handler(message);
  set.add(entry);
  return () => {
    set.delete(entry);
  };
}

function dataOf(handler) {
  if (typeof handler !== "function") throw new TypeError("the handler must be a function");
  return (event) => handler(event.data, event);
}

/** Call every handler; one that throws is reported and does not stop the others. */
function call(set, message) {
  if (set === undefined) return;
  for (const handler of [...set]) {
    try {
      handler(message);
    } catch (error) {
      report(error);
    }
  }
}

function send(ws, message) {
  if (ws instanceof WebSocket && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify(message));
  }
}

/** Detach and close a socket or stream we are done with; its end no longer matters. */
function discard(ws, code, reason) {
  if (ws === null) return;
  if (!(ws instanceof WebSocket)) {
    ws.onmessage = ws.onerror = null;
    ws.close(); // an EventSource: no code, no reason, and no reconnect of its own
    return;
  }
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.onerror = null;
  if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) {
    // A close reason is limited to 123 bytes.
    ws.close(code, String(reason).slice(0, 100));
  }
}

function report(error) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else console.error(error);
}
