"use strict";
// Load generator of bench/fanout.py: holds every client socket of one server and runs the
// scenarios the orchestrator asks for, one JSON command per stdin line, one JSON reply per
// stdout line (diagnostics go to stderr).
//
//   node loadgen.js CONFIG.json
//
// CONFIG: {proto: "native" | "sio", port, serverPid, clkTck, clients: [{userId, characterId,
// characterName, zone, token}]}. Speaks the native protocol (PROTOCOL.md §1.1) to our server
// and raw Engine.IO 4 / Socket.IO 5 frames (`40`, `42[..]`, `43<id>[..]`, `2` → `3`) to the
// Node reference, over the minimal WebSocket client of rawws.js (`transport: "ws"` in CONFIG
// uses the `ws` package instead, to cross-check the counts; it costs more CPU per frame).
//
// Commands: {cmd: "connect", clients?: [index], concurrency} · {cmd: "close", clients?} ·
// {cmd: "reconnect", concurrency} (drop every socket at once, then connect them all again) ·
// {cmd: "step", rate, warm, seconds, drainMax, sendersPerZone} (chat fan-out at `rate`
// messages/s) · {cmd: "stats"} · {cmd: "quit"}.
//
// The hot path is receiving `chat:message` frames: they are recognised by a byte prefix and
// only the bench's tag inside the message text is read (no JSON parse): `b<tag>:<sent µs>:`,
// the send time from this process's monotonic clock, so the latency is receive − send on
// one clock.

const fs = require("node:fs");
const readline = require("node:readline");
const { performance } = require("node:perf_hooks");
const { open } = require("./rawws");

const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const NATIVE = cfg.proto === "native";
const CLK_TCK = cfg.clkTck || 100;
const CONNECT_TIMEOUT_MS = 60000;
const TRANSPORT = cfg.transport || "raw"; // "ws": the `ws` package (slower; to cross-check)
const PENDING = { pending: true }; // c.conn while a connection is being opened

const NATIVE_CHAT = Buffer.from('{"event":"chat:message"');
const NATIVE_ACK = Buffer.from('{"ack":');
const SIO_CHAT = Buffer.from('42["chat:message"');
const MSG_MARK = Buffer.from('"message":"b');
const FILLER = "the quick brown fox jumps over the lazy dog";

function log(...args) {
  process.stderr.write(`[loadgen] ${args.join(" ")}\n`);
}

// --- CPU from /proc -------------------------------------------------------------------------

function procCpuS(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime
  } catch {
    return NaN;
  }
}

function machineBusyS() {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  const steal = f[7] || 0;
  return (f.slice(0, 8).reduce((a, b) => a + b, 0) - idle - steal) / CLK_TCK;
}

function ownCpuS() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function cpuMark() {
  const u = process.cpuUsage();
  return {
    t: performance.now(),
    server: procCpuS(cfg.serverPid),
    own: (u.user + u.system) / 1e6,
    ownSys: u.system / 1e6,
    machine: machineBusyS(),
  };
}

function cpuSince(mark) {
  const now = cpuMark();
  const wall = (now.t - mark.t) / 1000;
  return {
    wallS: wall,
    serverCpuS: now.server - mark.server,
    genCpuS: now.own - mark.own,
    genSysCpuS: now.ownSys - mark.ownSys,
    machineCpuS: now.machine - mark.machine,
  };
}

// --- latency histogram (0.1 ms buckets below 1 s, 1 ms buckets up to 61 s) ------------------

const FINE = 10000;
const BUCKETS = FINE + 60000;

function newHist() {
  return { counts: new Uint32Array(BUCKETS), n: 0, max: 0 };
}

function histAdd(h, ms) {
  const b = ms < 1000 ? Math.max(0, Math.floor(ms * 10)) : Math.min(BUCKETS - 1, FINE + Math.floor(ms - 1000));
  h.counts[b]++;
  h.n++;
  if (ms > h.max) h.max = ms;
}

function histQuantile(h, q) {
  if (h.n === 0) return null;
  const rank = Math.max(1, Math.ceil(q * h.n));
  let seen = 0;
  for (let b = 0; b < BUCKETS; b++) {
    seen += h.counts[b];
    if (seen >= rank) return b < FINE ? (b + 1) / 10 : 1000 + (b - FINE) + 1; // upper edge
  }
  return h.max;
}

function histSummary(h) {
  return {
    n: h.n,
    p50: histQuantile(h, 0.5),
    p90: histQuantile(h, 0.9),
    p99: histQuantile(h, 0.99),
    max: h.n ? h.max : null,
  };
}

// --- clients --------------------------------------------------------------------------------

const clients = cfg.clients.map((spec, i) => ({
  i,
  spec,
  conn: null,
  selected: false,
  nextAck: 1,
  pending: new Map(), // ack id → callback(data)
  onReady: null,
  onFail: null,
}));
const zoneMembers = new Map(); // zone → [client]
for (const c of clients) {
  if (!zoneMembers.has(c.spec.zone)) zoneMembers.set(c.spec.zone, []);
  zoneMembers.get(c.spec.zone).push(c);
}
const zoneSelected = new Map([...zoneMembers.keys()].map((z) => [z, 0]));

const counters = {
  chatFrames: 0,
  chatUnparsed: 0,
  otherEvents: {},
  closes: {}, // "code reason" → n (closes the generator did not ask for)
  errors: {},
};
// Per tag: deliveries received and their latency.
const received = [];
const latency = [];
let windowOpen = false;
let windowChat = 0;

function countOther(event) {
  counters.otherEvents[event] = (counters.otherEvents[event] || 0) + 1;
}

function countError(key) {
  counters.errors[key] = (counters.errors[key] || 0) + 1;
}

function delivery(buf, from) {
  const now = performance.now();
  counters.chatFrames++;
  if (windowOpen) windowChat++;
  const i = buf.indexOf(MSG_MARK, from);
  if (i < 0) {
    counters.chatUnparsed++;
    return;
  }
  let p = i + MSG_MARK.length;
  let tag = 0;
  let ch;
  while ((ch = buf[p++]) !== 0x3a) {
    if (ch === undefined) return void counters.chatUnparsed++;
    tag = tag * 10 + (ch - 48);
  }
  let sentUs = 0;
  while ((ch = buf[p++]) !== 0x3a) {
    if (ch === undefined) return void counters.chatUnparsed++;
    sentUs = sentUs * 10 + (ch - 48);
  }
  received[tag] = (received[tag] || 0) + 1;
  let h = latency[tag];
  if (h === undefined) h = latency[tag] = newHist();
  histAdd(h, now - sentUs / 1000);
}

function markSelected(c) {
  if (!c.selected) {
    c.selected = true;
    zoneSelected.set(c.spec.zone, zoneSelected.get(c.spec.zone) + 1);
  }
}

function markGone(c) {
  if (c.selected) {
    c.selected = false;
    zoneSelected.set(c.spec.zone, zoneSelected.get(c.spec.zone) - 1);
  }
  c.conn = null;
  for (const cb of c.pending.values()) cb(null);
  c.pending.clear();
}

function fail(c, why) {
  const reject = c.onFail;
  c.onReady = c.onFail = null;
  if (reject) reject(new Error(why));
}

function request(c, event, data, cb) {
  const id = c.nextAck++;
  c.pending.set(id, cb);
  if (NATIVE) c.conn.send(`{"event":${JSON.stringify(event)},"data":${JSON.stringify(data)},"ack":${id}}`);
  else c.conn.send(`42${id}${JSON.stringify([event, data])}`);
}

function answer(c, id, data) {
  const cb = c.pending.get(id);
  if (cb !== undefined) {
    c.pending.delete(id);
    cb(data);
  }
}

function select(c) {
  request(c, "character:select", { characterId: String(c.spec.characterId) }, (reply) => {
    if (reply && reply.ok) {
      markSelected(c);
      const resolve = c.onReady;
      c.onReady = c.onFail = null;
      if (resolve) resolve();
    } else {
      fail(c, `select: ${JSON.stringify(reply && reply.error)}`);
    }
  });
}

function onNative(c, conn, data) {
  if (data.length > NATIVE_CHAT.length && data.compare(NATIVE_CHAT, 0, NATIVE_CHAT.length, 0, NATIVE_CHAT.length) === 0) {
    delivery(data, NATIVE_CHAT.length);
    return;
  }
  const m = JSON.parse(data);
  if (data.compare(NATIVE_ACK, 0, NATIVE_ACK.length, 0, NATIVE_ACK.length) === 0) {
    answer(c, m.ack, m.data);
    return;
  }
  countOther(m.event);
  if (m.event === "sync:initial") select(c);
  else if (m.event === "connect_error") fail(c, `connect_error ${JSON.stringify(m.data)}`);
}

function onSio(c, conn, data) {
  const k = data[0];
  if (k === 0x32 /* 2: ping */) {
    conn.send("3");
    return;
  }
  if (k === 0x34 /* 4: message */) {
    const t = data[1];
    if (t === 0x32 /* 2: EVENT */) {
      if (data.length > SIO_CHAT.length && data.compare(SIO_CHAT, 0, SIO_CHAT.length, 0, SIO_CHAT.length) === 0) {
        delivery(data, SIO_CHAT.length);
        return;
      }
      const s = data.toString();
      countOther(JSON.parse(s.slice(2))[0]);
      return;
    }
    if (t === 0x33 /* 3: ACK */) {
      const s = data.toString();
      const open = s.indexOf("[");
      answer(c, Number(s.slice(2, open)), JSON.parse(s.slice(open))[0]);
      return;
    }
    if (t === 0x30 /* 0: CONNECT ok */) {
      countOther("connect");
      select(c);
      return;
    }
    if (t === 0x34 /* 4: CONNECT_ERROR */) {
      fail(c, `connect_error ${data.toString()}`);
      return;
    }
    countOther(`sio:${String.fromCharCode(t)}`);
    return;
  }
  if (k === 0x30 /* 0: open */) {
    const { userId, characterId, characterName, zone } = c.spec;
    conn.send(`40${JSON.stringify({ userId, characterId, characterName, zone })}`);
    return;
  }
  countOther(`eio:${String.fromCharCode(k)}`);
}

function connect(c) {
  if (c.conn !== null) return Promise.resolve();
  const { userId, characterId, characterName, zone, token } = c.spec;
  const options = NATIVE
    ? { port: cfg.port, path: "/ws/game/", protocols: ["aeturnis.v1", `bearer.${token}`] }
    : { port: cfg.port, path: "/socket.io/?EIO=4&transport=websocket" };
  options.transport = TRANSPORT;
  const handler = NATIVE ? onNative : onSio;
  return new Promise((resolve, reject) => {
    let settled = false;
    let mine = null; // this attempt's connection, once known
    const timer = setTimeout(() => c.onFail && c.onFail(new Error("timeout")), CONNECT_TIMEOUT_MS);
    c.conn = PENDING;
    c.nextAck = 1;
    c.onReady = () => {
      settled = true;
      clearTimeout(timer);
      c.onReady = c.onFail = null;
      resolve();
    };
    c.onFail = (err) => {
      settled = true;
      clearTimeout(timer);
      c.onReady = c.onFail = null;
      if (c.conn === mine || c.conn === PENDING) markGone(c);
      if (mine !== null) mine.terminate();
      reject(err);
    };
    const adopt = (conn) => {
      if (mine === null) {
        mine = conn;
        if (c.conn === PENDING) c.conn = conn;
      }
      return c.conn === conn;
    };
    open(options, {
      onMessage(buf, conn) {
        if (adopt(conn)) handler(c, conn, buf);
      },
      onClose(code, reason) {
        if (mine === null || c.conn !== mine) return; // a socket we dropped on purpose
        const key = `${code} ${reason}`.trim();
        counters.closes[key] = (counters.closes[key] || 0) + 1;
        markGone(c);
        if (!settled) c.onFail(new Error(`closed ${key}`));
      },
      onError(err) {
        if (!settled && c.onFail) c.onFail(new Error(`error ${err.code || err.message}`));
        else countError(String(err.code || err.message));
      },
    }).then(
      (conn) => {
        adopt(conn);
        if (settled && c.conn !== conn) conn.terminate(); // gave up on it meanwhile
      },
      (err) => {
        if (!settled && c.onFail) c.onFail(new Error(`handshake ${err.code || err.message}`));
      },
    );
  });
}

async function connectMany(list, concurrency) {
  const mark = cpuMark();
  const times = newHist();
  const failures = {};
  let next = 0;
  let done = 0;
  async function worker() {
    while (next < list.length) {
      const c = list[next++];
      const t0 = performance.now();
      try {
        await connect(c);
        histAdd(times, performance.now() - t0);
        done++;
      } catch (err) {
        const key = String(err.message).slice(0, 120);
        failures[key] = (failures[key] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, worker));
  return { connected: done, failures, connectMs: histSummary(times), ...cpuSince(mark) };
}

function pick(indices) {
  return indices ? indices.map((i) => clients[i]) : clients;
}

function live(c) {
  return c.conn !== null && c.conn !== PENDING;
}

function dropAll(list) {
  for (const c of list) {
    const conn = c.conn;
    if (!live(c)) continue;
    markGone(c);
    conn.terminate();
  }
}

async function closeGracefully(list) {
  await Promise.all(
    list.map(
      (c) =>
        new Promise((resolve) => {
          const conn = c.conn;
          if (!live(c)) return resolve();
          markGone(c);
          conn.closed.then(resolve);
          conn.close(1000);
        }),
    ),
  );
}

// --- the chat fan-out step -----------------------------------------------------------------

let stepNumber = 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function step(cmd) {
  const rate = cmd.rate; // messages per second, all senders together
  const warmS = cmd.warm ?? 1;
  const seconds = cmd.seconds ?? 5;
  const drainMaxS = cmd.drainMax ?? 5;
  const perZone = cmd.sendersPerZone ?? 5;
  stepNumber++;
  const warmTag = 2 * stepNumber;
  const tag = warmTag + 1;
  const senders = [];
  for (let k = 0; k < perZone; k++) {
    for (const members of zoneMembers.values()) {
      const live = members.filter((c) => c.selected);
      if (k < live.length) senders.push(live[k]);
    }
  }
  if (senders.length === 0) throw new Error("no selected clients to send from");
  const stats = {
    sent: 0,
    acked: 0,
    nacked: 0,
    nackCodes: {},
    lostAcks: 0,
    expected: 0,
    ackMs: newHist(),
  };
  const closesBefore = JSON.stringify(counters.closes);
  const total = Math.ceil((warmS + seconds) * rate);
  const warmCount = Math.ceil(warmS * rate);
  let outstanding = 0;
  let windowMark = null;
  let windowCpu = null;
  const start = performance.now();
  let k = 0;
  await new Promise((resolve) => {
    function tick() {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - start) / 1000) * rate) + 1);
      while (k < due) {
        const measured = k >= warmCount;
        if (measured && windowMark === null) {
          windowChat = 0;
          windowOpen = true;
          windowMark = cpuMark();
        }
        const c = senders[k % senders.length];
        k++;
        if (!c.selected) continue; // closed meanwhile (counted in closes)
        const t = measured ? tag : warmTag;
        const recipients = zoneSelected.get(c.spec.zone) - 1;
        const sentAt = performance.now();
        const text = `b${t}:${Math.round(sentAt * 1000)}:${FILLER}`;
        if (measured) stats.sent++;
        outstanding++;
        request(c, "chat:message", { channel: "zone", message: text }, (reply) => {
          outstanding--;
          if (!measured) return;
          if (reply === null) stats.lostAcks++;
          else if (reply.ok) {
            stats.acked++;
            stats.expected += recipients;
            histAdd(stats.ackMs, performance.now() - sentAt);
          } else {
            stats.nacked++;
            const code = (reply.error && reply.error.code) || "?";
            stats.nackCodes[code] = (stats.nackCodes[code] || 0) + 1;
          }
        });
      }
      if (k >= total) {
        windowOpen = false;
        windowCpu = cpuSince(windowMark ?? cpuMark());
        resolve();
      } else setTimeout(tick, 1);
    }
    tick();
  });
  const sendEnd = performance.now();
  const windowDeliveries = windowChat;
  // Drain: wait for every ack and every expected delivery, at most drainMax seconds.
  while (performance.now() - sendEnd < drainMaxS * 1000) {
    if (outstanding === 0 && (received[tag] || 0) >= stats.expected) break;
    await sleep(20);
  }
  const drainS = (performance.now() - sendEnd) / 1000;
  const got = received[tag] || 0;
  const unacked = stats.sent - stats.acked - stats.nacked - stats.lostAcks;
  const lat = histSummary(latency[tag] || newHist());
  latency[tag] = undefined;
  latency[warmTag] = undefined;
  const result = {
    step: stepNumber,
    rate,
    senders: senders.length,
    warmS,
    seconds,
    sent: stats.sent,
    acked: stats.acked,
    nacked: stats.nacked,
    nackCodes: stats.nackCodes,
    unacked: unacked + stats.lostAcks,
    expected: stats.expected,
    received: got,
    loss: stats.expected > 0 ? Math.max(0, stats.expected - got) / stats.expected : null,
    deliveriesPerS: got / seconds,
    windowDeliveries,
    latencyMs: lat,
    ackMs: histSummary(stats.ackMs),
    drainS,
    window: windowCpu,
    newCloses: JSON.stringify(counters.closes) === closesBefore ? null : counters.closes,
  };
  return result;
}

async function settle(quietMs, maxS) {
  // Wait until no chat frame arrived for quietMs (the server caught up), at most maxS.
  const t0 = performance.now();
  let last = counters.chatFrames;
  let quietSince = performance.now();
  while (performance.now() - t0 < maxS * 1000) {
    await sleep(50);
    if (counters.chatFrames !== last) {
      last = counters.chatFrames;
      quietSince = performance.now();
    } else if (performance.now() - quietSince >= quietMs) break;
  }
  return (performance.now() - t0) / 1000;
}

// --- command loop ---------------------------------------------------------------------------

async function handle(cmd) {
  switch (cmd.cmd) {
    case "connect":
      return connectMany(pick(cmd.clients), cmd.concurrency ?? 50);
    case "close":
      await closeGracefully(pick(cmd.clients));
      return { closed: true };
    case "reconnect": {
      const mark = cpuMark();
      const list = clients.filter(live);
      dropAll(list);
      const r = await connectMany(list, cmd.concurrency ?? 50);
      return { dropped: list.length, ...r, ...cpuSince(mark) };
    }
    case "step":
      return step(cmd);
    case "settle":
      return { settleS: await settle(cmd.quietMs ?? 300, cmd.maxS ?? 10) };
    case "stats":
      return {
        ...counters,
        selected: clients.filter((c) => c.selected).length,
        genCpuS: ownCpuS(),
        genRssKb: Math.round(process.memoryUsage().rss / 1024),
      };
    case "quit":
      dropAll(clients);
      setTimeout(() => process.exit(0), 50);
      return { bye: true };
    default:
      throw new Error(`unknown command ${cmd.cmd}`);
  }
}

let queue = Promise.resolve();
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    let reply;
    try {
      reply = { ok: true, ...(await handle(JSON.parse(line))) };
    } catch (err) {
      reply = { ok: false, error: String(err && err.stack ? err.stack : err) };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  });
});
process.stdin.on("end", () => {
  queue.then(() => process.exit(0));
});
log(`${clients.length} clients, ${NATIVE ? "native" : "socket.io"} protocol, port ${cfg.port}`);
