// The protocol client, whatever the transport: requests with acks, connection life, reconnects
// with backoff and jitter, resume after a reconnect, token refresh (PROTOCOL.md §2, §3, §8).
//
//   const client = new GameClient({auth, transport: "native" | "socketio", ...});
//   client.on("chat:message", (data, meta) => ...);   any server event
//   client.on("status", (status) => ...);              connection state for the indicator
//   client.on("ready", (initial) => ...);              first sync:initial
//   client.on("resumed", (report) => ...);             after a reconnect: what was recovered
//   client.restore = async (initial) => rooms;         re-enter the game after a reconnect
//   const reply = await client.request("character:select", {characterId});  throws RequestError

import { NativeTransport, SocketIoTransport } from "./transport.js";

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const RATE_LIMITED_WAIT_MS = 30_000;
const HEARTBEAT_MS = 25_000;
const HEARTBEAT_TIMEOUT_MS = 10_000;
const AUTH_CODES = new Set(["AUTH_REQUIRED", "TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_REVOKED"]);

export class RequestError extends Error {
  constructor(event, error) {
    super(error?.message || error?.code || "Request failed");
    this.event = event;
    this.code = error?.code ?? "UNKNOWN";
    this.details = error ?? {};
  }
}

/** Exponential backoff with jitter: a random delay between half and all of the step. */
export function backoffDelay(attempt) {
  const step = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return step / 2 + Math.random() * (step / 2);
}

export class GameClient {
  constructor({ auth, transport = "native", sioLibrary, sioWebsocketOnly = false }) {
    this.auth = auth;
    this.listeners = new Map();
    this.restore = async () => [];
    this.offsets = new Map(); // room -> offset of the last event received
    this.epochs = new Map(); // room -> epoch, once the server sends epochs
    this.serverClockOffsetMs = 0;
    this.userId = null;
    this.everConnected = false;
    this.stopped = false;
    this.attempt = 0;
    this.lastReason = null; // why the server is about to close: connect_error, auth:expired, ...
    this.resumeBuffer = null; // room events held while resuming
    const getToken = () => this.auth.fresh();
    const handlers = {
      onEvent: (event, data, meta) => this.#event(event, data, meta),
      onOpen: (info) => this.#opened(info),
      onClose: (info) => this.#closed(info),
      onRefused: (info) => this.#refused(info),
      onReconnecting: ({ attempt }) => this.#status("reconnecting", { attempt }),
    };
    this.transport =
      transport === "socketio"
        ? new SocketIoTransport(getToken, handlers, {
            librarySrc: sioLibrary,
            websocketOnly: sioWebsocketOnly,
          })
        : new NativeTransport(getToken, handlers);
  }

  on(event, listener) {
    if (!this.listeners.has(event)) this.listeners.set(event, []);
    this.listeners.get(event).push(listener);
  }

  emit(event, ...args) {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        listener(...args);
      } catch (err) {
        console.error(`listener of ${event} failed`, err);
      }
    }
  }

  get connected() {
    return this.transport.open;
  }

  /** Server time now, from the clock offset measured at sync:initial. */
  serverNow() {
    return Date.now() + this.serverClockOffsetMs;
  }

  connect() {
    this.stopped = false;
    this.#status(this.everConnected ? "reconnecting" : "connecting", { attempt: this.attempt });
    this.transport.connect().catch((err) => {
      if (err.status === 401) this.#loggedOut(null, "REFRESH_FAILED");
      else this.#closed({ code: null, reason: String(err.message ?? err) });
    });
  }

  #loggedOut(code, reason) {
    this.stopped = true;
    this.#status("logged-out", { code, reason });
    this.emit("logged-out");
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeat);
    this.transport.close();
    this.#status("offline", {});
  }

  /** Send with an ack; resolves with the ack's data, rejects with RequestError or a timeout. */
  async request(event, data = {}, timeoutMs) {
    const reply = await this.transport.request(event, data, timeoutMs);
    if (reply?.ok === false) throw new RequestError(event, reply.error);
    return reply;
  }

  send(event, data = {}) {
    this.transport.send(event, data);
  }

  /** Hand a refreshed token to the live connection (PROTOCOL.md §2, `auth:refresh`). */
  async tokenRefreshed(token) {
    if (this.connected) await this.request("auth:refresh", { token });
  }

  #status(state, extra) {
    this.state = state;
    this.emit("status", { state, transport: this.transport.name, ...extra });
  }

  // --- events ---------------------------------------------------------------------------

  #event(event, data, meta) {
    if (meta.room !== undefined && this.resumeBuffer && this.resumeBuffer.rooms.has(meta.room)) {
      this.resumeBuffer.events.push([event, data, meta]);
      return;
    }
    if (meta.room !== undefined) this.#track(meta);
    switch (event) {
      case "sync:initial":
        this.#initial(data);
        return;
      case "connect_error":
      case "auth:expired":
      case "session:kicked":
      case "system:shutdown":
        this.lastReason = { event, ...data };
        break;
    }
    this.emit(event, data, meta);
  }

  #track({ room, offset, epoch }) {
    if (Number.isInteger(offset)) this.offsets.set(room, offset);
    if (epoch !== undefined) this.epochs.set(room, epoch);
  }

  #adoptOffsets(offsets) {
    for (const [room, value] of Object.entries(offsets ?? {})) {
      // Today a number; PROTOCOL.md §8 adds an epoch per room, so accept {offset, epoch} too.
      if (typeof value === "number") this.#track({ room, offset: value });
      else this.#track({ room, offset: value?.offset, epoch: value?.epoch });
    }
  }

  // --- connection life ---------------------------------------------------------------------

  #opened({ recovered }) {
    this.recoveredBySocketIo = recovered;
    if (recovered) {
      // Socket.IO connection state recovery: rooms and missed events came back by themselves.
      this.attempt = 0;
      this.#status("online", {});
      this.emit("resumed", { recovered: true, via: "connection state recovery", rooms: {} });
    }
  }

  async #initial(initial) {
    this.userId = initial.userId;
    this.socketId = initial.socketId;
    this.serverClockOffsetMs = initial.serverTime - Date.now();
    this.attempt = 0;
    this.lastReason = null;
    this.#startHeartbeat();
    this.#status("online", {});
    if (!this.everConnected) {
      this.everConnected = true;
      this.#adoptOffsets(initial.offsets);
      this.emit("ready", initial);
      return;
    }
    if (this.recoveredBySocketIo) return;
    await this.#resume(initial);
  }

  /**
   * After a reconnect: re-enter the game (the app re-selects the character), then ask for every
   * room event missed since the last one received (`sync:resume`), holding live room events
   * until the answer so that nothing is shown twice or out of order.
   */
  async #resume(initial) {
    const before = new Map(this.offsets);
    const beforeEpochs = new Map(this.epochs);
    const roomsNow = new Set(initial.rooms ?? []);
    this.resumeBuffer = { rooms: new Set(before.keys()), events: [] };
    let report = { recovered: false, via: "sync:resume", rooms: {}, error: null };
    try {
      for (const room of await this.restore(initial)) roomsNow.add(room);
      const rooms = {};
      const epochs = {};
      for (const [room, offset] of before) {
        if (!roomsNow.has(room)) continue;
        rooms[room] = offset;
        if (beforeEpochs.has(room)) epochs[room] = beforeEpochs.get(room);
      }
      const request = { rooms };
      if (Object.keys(epochs).length) request.epochs = epochs;
      const answer = await this.request("sync:resume", request);
      report.rooms = answer.rooms;
      report.recovered = Object.values(answer.rooms).every((room) => room.recovered);
    } catch (err) {
      report.error = err.message;
    } finally {
      this.#releaseBuffer(before, report.rooms);
    }
    // Rooms of this connection we had no position in (e.g. a guild that never spoke): their
    // missed events cannot be asked for, so the app reloads what it shows of them.
    report.unknownRooms = [...roomsNow].filter((room) => !before.has(room));
    for (const [room, offset] of this.offsets) if (!roomsNow.has(room)) this.offsets.delete(room);
    this.emit("resumed", report);
  }

  /** Deliver what was held while resuming, in offset order, each offset once. */
  #releaseBuffer(before, answered) {
    const held = this.resumeBuffer?.events ?? [];
    this.resumeBuffer = null;
    const byRoom = new Map();
    for (const item of held) {
      const room = item[2].room;
      if (!byRoom.has(room)) byRoom.set(room, new Map());
      byRoom.get(room).set(item[2].offset, item); // one per offset: replay and live may overlap
    }
    for (const [room, items] of byRoom) {
      // Only a recovered room's offsets continue ours; after a lost history they start anew.
      const base = answered[room]?.recovered ? before.get(room) : -Infinity;
      const ordered = [...items.values()].sort((a, b) => a[2].offset - b[2].offset);
      for (const [event, data, meta] of ordered) {
        if (meta.offset > base) this.#event(event, data, meta);
      }
    }
    for (const [room, { offset, epoch }] of Object.entries(answered)) {
      if (!Number.isInteger(offset)) continue;
      if ((this.offsets.get(room) ?? -1) < offset) this.#track({ room, offset, epoch });
    }
  }

  #startHeartbeat() {
    clearInterval(this.heartbeat);
    if (!(this.transport instanceof NativeTransport)) return; // Engine.IO has its own pings
    this.heartbeat = setInterval(() => {
      this.request("ping", {}, HEARTBEAT_TIMEOUT_MS).catch((err) => {
        if (err.code === "TIMEOUT") this.transport.abort(4000, "HEARTBEAT_TIMEOUT");
      });
    }, HEARTBEAT_MS);
  }

  #refused({ code, message, autoReconnect }) {
    this.lastReason = { event: "connect_error", code, message };
    this.emit("connect_error", { code, message });
    if (!autoReconnect) this.#afterClose(null);
  }

  #closed({ code, reason, autoReconnect }) {
    clearInterval(this.heartbeat);
    if (this.stopped) return;
    this.emit("disconnected", { code, reason });
    if (autoReconnect) {
      this.#status("reconnecting", { attempt: this.attempt, code, reason });
      return;
    }
    this.#afterClose(code, reason);
  }

  /** Decide what to do after a close or a refusal, per the close codes of PROTOCOL.md §3. */
  async #afterClose(code, reason) {
    const why = this.lastReason ?? {};
    const whyCode = why.code ?? reason;
    this.lastReason = null;
    if (code === 4003 || why.event === "session:kicked" || whyCode === "USER_BANNED") {
      this.stopped = true;
      this.#status("kicked", { code, reason: why.reason || whyCode || "kicked" });
      return;
    }
    if (code === 4001 || AUTH_CODES.has(whyCode)) {
      try {
        await this.auth.refresh();
      } catch (err) {
        if (err.status === 401) {
          this.#loggedOut(code, whyCode); // the refresh token is over too: log in again
          return;
        }
      }
      // Backoff here too: a server that keeps refusing fresh tokens is not hammered.
      this.#retryIn(backoffDelay(this.attempt++), { code, reason: whyCode });
      return;
    }
    let delay = backoffDelay(this.attempt);
    if (why.event === "system:shutdown") delay += why.reconnectAfterMs ?? 0;
    if (code === 4029 || whyCode?.endsWith?.("RATE_LIMITED")) delay += RATE_LIMITED_WAIT_MS;
    this.attempt += 1;
    this.#retryIn(delay, { code, reason: whyCode });
  }

  #retryIn(delayMs, extra) {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.#status("reconnecting", {
      ...extra,
      attempt: this.attempt,
      retryAt: Date.now() + delayMs,
    });
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }

  /** Try again at once (the "reconnect now" button, or the browser coming back online). */
  reconnectNow() {
    if (this.stopped || this.connected) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }
}
