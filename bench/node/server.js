"use strict";
// The Node reference for bench/fanout.py: a bare Socket.IO 4 server with the Redis adapter,
// doing what the old Node server did on the chat hot path and no more (no database, no
// rate limits, no validation beyond the message length).
//
//   node server.js --port 3000 [--redis-url redis://127.0.0.1:6379/0] [--redis-key bench-sio]
//
// - connect with `auth: {userId, characterId, characterName, zone}`: joins `zone:<zone>`;
// - `character:select` (ack): joins the zone (again), tells the zone `character:online`, acks
//   `{ok: true, character}`; a disconnect tells the zone `character:offline` (our server sends
//   both events too, so a connect storm fans out the same frames on both);
// - `chat:message` `{channel: "zone", message}` (ack): `socket.to(zoneRoom).emit("chat:message",
//   {id, userId, characterId, characterName, channel, message, serverTimestamp})`, then acks
//   `{ok: true, id, serverTimestamp}`.
// WebSocket transport only. `GET /healthz` answers 200 once the adapter is connected.

const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = Number(option("port", "3000"));
const redisUrl = option("redis-url", "redis://127.0.0.1:6379/0");
const redisKey = option("redis-key", "bench-sio"); // the adapter's pub/sub channel prefix

let ready = false;
const httpServer = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(ready ? 200 : 503, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: ready }));
    return;
  }
  res.writeHead(404);
  res.end();
});

const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  maxHttpBufferSize: 65536,
});

let nextMessageId = 0;

io.on("connection", (socket) => {
  const auth = socket.handshake.auth || {};
  const zone = String(auth.zone || "");
  const me = {
    userId: String(auth.userId || ""),
    characterId: String(auth.characterId || ""),
    characterName: String(auth.characterName || ""),
    zoneRoom: `zone:${zone}`,
  };
  socket.join(me.zoneRoom);

  socket.on("character:select", (data, ack) => {
    socket.join(me.zoneRoom);
    const now = Date.now();
    socket.to(me.zoneRoom).emit("character:online", {
      characterId: me.characterId,
      userId: me.userId,
      name: me.characterName,
      timestamp: now,
    });
    if (typeof ack === "function") {
      ack({ ok: true, character: { id: me.characterId, name: me.characterName, zone } });
    }
  });

  socket.on("chat:message", (data, ack) => {
    const text = data && typeof data.message === "string" ? data.message.trim() : "";
    if (!text || text.length > 500) {
      if (typeof ack === "function") {
        ack({ ok: false, error: { code: "INVALID_MESSAGE", message: "1-500 characters" } });
      }
      return;
    }
    const id = String(++nextMessageId);
    const serverTimestamp = Date.now();
    socket.to(me.zoneRoom).emit("chat:message", {
      id,
      userId: me.userId,
      characterId: me.characterId,
      characterName: me.characterName,
      channel: "zone",
      message: text,
      serverTimestamp,
    });
    if (typeof ack === "function") ack({ ok: true, id, serverTimestamp });
  });

  socket.on("disconnect", () => {
    socket.to(me.zoneRoom).emit("character:offline", {
      characterId: me.characterId,
      userId: me.userId,
      timestamp: Date.now(),
    });
  });
});

async function main() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on("error", (err) => console.error("redis pub:", err.message));
  sub.on("error", (err) => console.error("redis sub:", err.message));
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub, { key: redisKey }));
  ready = true;
  httpServer.listen(port, "127.0.0.1", () => {
    console.log(`node reference listening on 127.0.0.1:${port} (socket.io, redis adapter)`);
  });
}

process.on("SIGTERM", () => {
  io.close();
  process.exit(0);
});

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
