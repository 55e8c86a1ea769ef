// A socket.io-client driven by tests/e2e/test_socketio_e2e.py.
//
//   node client.mjs '<scenario JSON>'
//
// Scenario: {"url": "http://127.0.0.1:8000", "token": "<jwt>" | null,
//            "options": {...extra io() options}, "lifetimeMs": 60000}
//
// The client connects at once with auth {token} and socket.io-client's default options (HTTP
// long-polling, then an upgrade to WebSocket) unless "options" say otherwise (e.g.
// {"transports": ["websocket"]}), and prints one JSON object per line on stdout for everything
// it observes:
//
//   {"type": "connect", "id", "transport", "recovered"}
//                                                    socket connected (again after a reconnect),
//                                                    on the engine's transport at that moment;
//                                                    recovered: socket.recovered (connection
//                                                    state recovery)
//   {"type": "upgrade", "transport"}                 the engine switched transports
//   {"type": "connect_error", "message", "data"}     refused by the server, or transport error
//   {"type": "disconnect", "reason", "closeCode", "closeReason"}
//   {"type": "event", "event", "args"}               any server event with all its arguments
//   {"type": "ack", "id", "data"}                    the answer to an "emit" command with an ack
//   {"type": "ack_error", "id", "message"}           no answer within timeoutMs
//   {"type": "reconnect_attempt" | "reconnect" | "reconnect_error", ...}   manager events
//   {"type": "exit"}                                 last line before the process ends
//
// Commands come on stdin, one JSON object per line:
//
//   {"op": "emit", "event", "data", "id"?, "timeoutMs"?, "buffers"?}
//                                         with "id": emitWithAck, answered by an "ack"/"ack_error"
//                                         line with that id; "buffers" {key: base64} puts binary
//                                         values (Buffers) into data[key] ("" for data itself)
//   {"op": "transport"}                   answered {"type": "transport", "name"}: the engine's
//                                         transport now (socket.io.engine.transport.name)
//   {"op": "exit"}                                         close the socket and end
//
// End of stdin and the lifetime limit also end the process, so it never outlives its test.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const scenario = JSON.parse(process.argv[2] ?? "{}");

function report(observation) {
  process.stdout.write(`${JSON.stringify(observation)}\n`);
}

const socket = io(scenario.url, {
  auth: scenario.token == null ? {} : { token: scenario.token },
  ...(scenario.options ?? {}),
});

function transportName() {
  return socket.io.engine?.transport?.name ?? null;
}

socket.on("connect", () =>
  report({
    type: "connect",
    id: socket.id,
    transport: transportName(),
    recovered: Boolean(socket.recovered),
  }),
);
// A new engine on every (re)connection of the manager.
socket.io.on("open", () =>
  socket.io.engine.on("upgrade", (transport) => report({ type: "upgrade", transport: transport.name })),
);
socket.on("connect_error", (err) =>
  report({ type: "connect_error", message: err.message, data: err.data ?? null }),
);
socket.on("disconnect", (reason, description) => {
  // For a closed transport, description.context is the WebSocket close event.
  const context = description?.context;
  report({
    type: "disconnect",
    reason,
    closeCode: typeof context?.code === "number" ? context.code : null,
    closeReason: typeof context?.reason === "string" ? context.reason : null,
  });
});
socket.onAny((event, ...args) => report({ type: "event", event, args }));
socket.io.on("reconnect_attempt", (attempt) => report({ type: "reconnect_attempt", attempt }));
socket.io.on("reconnect", (attempt) => report({ type: "reconnect", attempt }));
socket.io.on("reconnect_error", (err) =>
  report({ type: "reconnect_error", message: String(err?.message ?? err) }),
);

let exiting = false;
function exit(code = 0) {
  if (exiting) return;
  exiting = true;
  socket.close();
  report({ type: "exit" });
  process.exit(code);
}

function withBuffers(data, buffers) {
  if (buffers === undefined) return data;
  for (const [key, base64] of Object.entries(buffers)) {
    const buffer = Buffer.from(base64, "base64");
    if (key === "") return buffer;
    data[key] = buffer;
  }
  return data;
}

async function emit(command) {
  const data = withBuffers(command.data, command.buffers);
  const args = data === undefined ? [] : [data];
  if (command.id === undefined) {
    socket.emit(command.event, ...args);
    return;
  }
  try {
    const answer = await socket
      .timeout(command.timeoutMs ?? 5000)
      .emitWithAck(command.event, ...args);
    report({ type: "ack", id: command.id, data: answer });
  } catch (err) {
    report({ type: "ack_error", id: command.id, message: String(err?.message ?? err) });
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  let command;
  try {
    command = JSON.parse(line);
  } catch (err) {
    report({ type: "bad_command", line, message: String(err) });
    return;
  }
  if (command.op === "emit") emit(command);
  else if (command.op === "transport") report({ type: "transport", name: transportName() });
  else if (command.op === "exit") exit(0);
  else report({ type: "bad_command", line });
});
lines.on("close", () => exit(0));
setTimeout(() => exit(3), scenario.lifetimeMs ?? 60000).unref();
