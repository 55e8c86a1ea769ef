// The two ways to carry the protocol (PROTOCOL.md §1), behind one small interface:
//
//   transport.connect()               open (again); the token comes from getToken()
//   transport.open                    whether requests can be sent now
//   transport.send(event, data)       fire and forget
//   transport.request(event, data)    resolves with the ack's data: {ok: true, ...} or
//                                     {ok: false, error}
//   transport.close()                 close for good
//
// and these callbacks, given to the constructor:
//
//   onEvent(event, data, meta)        meta = {room, offset, epoch} for room events, else {}
//   onOpen({recovered})               connected (Socket.IO: recovered = connection state recovery)
//   onClose({code, reason, autoReconnect})
//   onRefused({code, message, autoReconnect})   the handshake was refused (Socket.IO CONNECT_ERROR)
//   onReconnecting({attempt})         Socket.IO's own reconnection is trying again

const ACK_TIMEOUT_MS = 10_000;

export class RequestTimeout extends Error {
  constructor(event) {
    super(`No answer to ${event}`);
    this.code = "TIMEOUT";
  }
}

/** `/ws/game/`, JSON frames, the token as the `bearer.<jwt>` subprotocol (PROTOCOL.md §2). */
export class NativeTransport {
  constructor(getToken, handlers) {
    this.getToken = getToken;
    this.on = handlers;
    this.ws = null;
    this.nextAck = 0;
    this.pending = new Map();
  }

  get name() {
    return "native";
  }

  get open() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  async connect() {
    const token = await this.getToken();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/game/`, [
      "aeturnis.v1",
      `bearer.${token}`,
    ]);
    this.ws = ws;
    ws.onopen = () => this.on.onOpen({ recovered: false });
    ws.onmessage = (message) => this.#frame(message.data);
    ws.onclose = (event) => this.#closed(ws, event.code, event.reason);
  }

  #frame(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (frame.ack !== undefined) {
      const waiting = this.pending.get(frame.ack);
      if (!waiting) return;
      this.pending.delete(frame.ack);
      clearTimeout(waiting.timer);
      waiting.resolve(frame.data);
      return;
    }
    const meta =
      frame.room === undefined
        ? {}
        : { room: frame.room, offset: frame.offset, epoch: frame.epoch };
    this.on.onEvent(frame.event, frame.data, meta);
  }

  #closed(ws, code, reason) {
    if (ws !== this.ws) return; // a socket we already gave up on
    this.ws = null;
    for (const waiting of this.pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(new Error("Disconnected"));
    }
    this.pending.clear();
    this.on.onClose({ code, reason, autoReconnect: false });
  }

  send(event, data) {
    if (this.open) this.ws.send(JSON.stringify({ event, data }));
  }

  request(event, data, timeoutMs = ACK_TIMEOUT_MS) {
    if (!this.open) return Promise.reject(new Error("Not connected"));
    const ack = ++this.nextAck;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ack);
        reject(new RequestTimeout(event));
      }, timeoutMs);
      this.pending.set(ack, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ event, data, ack }));
    });
  }

  /** Give up on a socket that stopped answering: report it closed now, without waiting. */
  abort(code, reason) {
    const ws = this.ws;
    if (!ws) return;
    ws.close(code, reason);
    this.#closed(ws, code, reason);
  }

  close() {
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000, "CLIENT_CLOSE");
  }
}

/**
 * `/socket.io/` through the real socket.io-client, with its default options (HTTP long-polling
 * first, then an upgrade) unless `websocketOnly`. Socket.IO reconnects on its own after a
 * transport close, with its own backoff and jitter; `auth` is a function so that every attempt
 * carries the freshest token.
 */
export class SocketIoTransport {
  constructor(getToken, handlers, { librarySrc, websocketOnly = false }) {
    this.getToken = getToken;
    this.on = handlers;
    this.librarySrc = librarySrc;
    this.websocketOnly = websocketOnly;
    this.socket = null;
  }

  get name() {
    return this.websocketOnly ? "socket.io (websocket only)" : "socket.io";
  }

  get open() {
    return Boolean(this.socket?.connected);
  }

  async connect() {
    if (this.socket) {
      this.socket.connect();
      return;
    }
    const { io } = await import(this.librarySrc);
    const options = {
      auth: (callback) => {
        this.getToken().then(
          (token) => callback({ token }),
          () => callback({}),
        );
      },
    };
    if (this.websocketOnly) options.transports = ["websocket"];
    const socket = io(location.origin, options);
    this.socket = socket;
    socket.on("connect", () => this.on.onOpen({ recovered: socket.recovered }));
    socket.on("connect_error", (err) =>
      this.on.onRefused({
        code: err.data?.code ?? "TRANSPORT_ERROR",
        message: err.message,
        autoReconnect: socket.active,
      }),
    );
    socket.on("disconnect", (reason, details) =>
      this.on.onClose({
        code: typeof details?.context?.code === "number" ? details.context.code : null,
        reason: details?.context?.reason || reason,
        autoReconnect: socket.active,
      }),
    );
    socket.io.on("reconnect_attempt", (attempt) => this.on.onReconnecting({ attempt }));
    socket.onAny((event, data, meta) => this.on.onEvent(event, data, meta ?? {}));
  }

  send(event, data) {
    if (this.open) this.socket.emit(event, data);
  }

  request(event, data, timeoutMs = ACK_TIMEOUT_MS) {
    if (!this.open) return Promise.reject(new Error("Not connected"));
    return this.socket
      .timeout(timeoutMs)
      .emitWithAck(event, data)
      .catch((err) => {
        throw err?.message?.includes("timed out") ? new RequestTimeout(event) : err;
      });
  }

  close() {
    this.socket?.disconnect();
  }
}
