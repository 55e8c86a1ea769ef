"use strict";
// A minimal WebSocket client (RFC 6455) for the load generator's receive path, plus the same
// interface over the `ws` package to cross-check it.
//
// Why not `ws` alone: measured on this machine, `ws` (8.23) costs the generator ~10 µs of CPU
// per received frame at ~80,000 frames/s (its receiver is a Writable stream with per-frame
// events), as much as the Node reference server spends to send it, so the generator would be
// the bottleneck before the servers are. This client parses the server's (unmasked) frames
// straight out of each socket chunk and hands each text frame's bytes to a callback.
// It supports what the servers here send: text/binary frames (fragmented ones reassembled),
// ping (answered with pong), close (answered, its code and reason kept). Frames it sends are
// masked with a random key, as the RFC requires of clients.
//
//   open({port, path, protocols, transport: "raw" | "ws"}, {onMessage(buf, conn), onClose(code,
//   reason), onError(err)}) → Promise<conn> with conn.send(text), conn.close(code),
//   conn.terminate(), conn.closed (a Promise that settles when the socket is gone).

const http = require("node:http");
const crypto = require("node:crypto");

const OP_CONT = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

class RawConnection {
  constructor(socket, handlers) {
    this.socket = socket;
    this.handlers = handlers;
    this.rest = null;
    this.fragments = null;
    this.closeCode = 1006;
    this.closeReason = "";
    this.gone = false;
    this.closed = new Promise((resolve) => {
      socket.on("close", () => {
        this.gone = true;
        resolve();
        handlers.onClose(this.closeCode, this.closeReason);
      });
    });
    socket.on("error", (err) => handlers.onError(err));
    socket.on("data", (chunk) => this.feed(chunk));
  }

  feed(chunk) {
    const buf = this.rest === null ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = null;
    const end = buf.length;
    let p = 0;
    while (end - p >= 2) {
      const b0 = buf[p];
      const b1 = buf[p + 1];
      let len = b1 & 0x7f;
      let h = 2;
      if (len === 126) {
        if (end - p < 4) break;
        len = buf.readUInt16BE(p + 2);
        h = 4;
      } else if (len === 127) {
        if (end - p < 10) break;
        len = Number(buf.readBigUInt64BE(p + 2));
        h = 10;
      }
      if (b1 & 0x80) {
        this.handlers.onError(new Error("masked frame from the server"));
        this.terminate();
        return;
      }
      if (end - p < h + len) break;
      const payload = buf.subarray(p + h, p + h + len);
      p += h + len;
      const op = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if (op === OP_TEXT || op === OP_BINARY || op === OP_CONT) {
        if (fin && this.fragments === null) this.handlers.onMessage(payload, this);
        else {
          if (this.fragments === null) this.fragments = [];
          this.fragments.push(Buffer.from(payload));
          if (fin) {
            const whole = Buffer.concat(this.fragments);
            this.fragments = null;
            this.handlers.onMessage(whole, this);
          }
        }
      } else if (op === OP_PING) {
        this.sendFrame(OP_PONG, Buffer.from(payload));
      } else if (op === OP_CLOSE) {
        this.closeCode = len >= 2 ? payload.readUInt16BE(0) : 1005;
        this.closeReason = len > 2 ? payload.subarray(2).toString() : "";
        this.sendFrame(OP_CLOSE, len >= 2 ? Buffer.from(payload.subarray(0, 2)) : Buffer.alloc(0));
        this.socket.end();
        return;
      }
    }
    if (p < end) this.rest = Buffer.from(buf.subarray(p));
  }

  sendFrame(op, payload) {
    if (this.gone || this.socket.destroyed) return;
    const len = payload.length;
    const h = len < 126 ? 2 : len < 65536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(h + 4 + len);
    frame[0] = 0x80 | op;
    if (h === 2) frame[1] = 0x80 | len;
    else if (h === 4) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(len, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeBigUInt64BE(BigInt(len), 2);
    }
    frame.writeUInt32BE((Math.random() * 0x100000000) >>> 0, h);
    const m0 = frame[h];
    const m1 = frame[h + 1];
    const m2 = frame[h + 2];
    const m3 = frame[h + 3];
    const o = h + 4;
    for (let i = 0; i < len; i++) {
      const m = (i & 3) === 0 ? m0 : (i & 3) === 1 ? m1 : (i & 3) === 2 ? m2 : m3;
      frame[o + i] = payload[i] ^ m;
    }
    this.socket.write(frame);
  }

  send(text) {
    this.sendFrame(OP_TEXT, Buffer.from(text));
  }

  close(code = 1000) {
    const body = Buffer.allocUnsafe(2);
    body.writeUInt16BE(code, 0);
    this.sendFrame(OP_CLOSE, body);
    setTimeout(() => this.terminate(), 5000).unref();
  }

  terminate() {
    this.socket.destroy();
  }
}

function openRaw({ port, path, protocols }, handlers) {
  return new Promise((resolve, reject) => {
    const headers = {
      Connection: "Upgrade",
      Upgrade: "websocket",
      "Sec-WebSocket-Version": "13",
      "Sec-WebSocket-Key": crypto.randomBytes(16).toString("base64"),
    };
    if (protocols && protocols.length) headers["Sec-WebSocket-Protocol"] = protocols.join(", ");
    const req = http.request({ host: "127.0.0.1", port, path, headers, agent: false });
    req.on("upgrade", (res, socket, head) => {
      socket.setNoDelay(true);
      const conn = new RawConnection(socket, handlers);
      resolve(conn);
      if (head.length > 0) conn.feed(head);
    });
    req.on("response", (res) => {
      res.resume();
      reject(new Error(`HTTP ${res.statusCode}`));
    });
    req.on("error", reject);
    req.end();
  });
}

function openWs({ port, path, protocols }, handlers) {
  const WebSocket = require("ws");
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols || [], {
      perMessageDeflate: false,
      skipUTF8Validation: true,
    });
    let opened = false;
    const conn = {
      send: (text) => ws.send(text),
      close: (code = 1000) => ws.close(code),
      terminate: () => ws.terminate(),
      closed: new Promise((done) => ws.once("close", done)),
    };
    ws.on("open", () => {
      opened = true;
      resolve(conn);
    });
    ws.on("message", (data) => handlers.onMessage(data, conn));
    ws.on("error", (err) => (opened ? handlers.onError(err) : reject(err)));
    ws.on("close", (code, reason) => {
      if (opened) handlers.onClose(code, reason.toString());
    });
  });
}

function open(options, handlers) {
  return options.transport === "ws" ? openWs(options, handlers) : openRaw(options, handlers);
}

module.exports = { open };
