// A socket.io client driven over stdin/stdout, for palaver's Rust protocol tests
// (tests/socketio_*.rs). One JSON command per input line; one JSON report per output
// line. Uses the real socket.io-client: v4 (protocol 5, what rasa-webchat 1.x speaks)
// or v2 (protocol 4 / Engine.IO 3, old widgets).
//
// Commands:
//   {"cmd": "connect", "id": "a", "url": "http://127.0.0.1:5005", "path": "/socket.io",
//    "namespace": "/", "auth": {...}, "client": "v4"|"v2", "transports": ["websocket"],
//    "listen": ["session_confirm", "bot_uttered"]}
//   {"cmd": "emit", "id": "a", "event": "user_uttered", "args": [{...}], "ack": true}
//   {"cmd": "disconnect", "id": "a"}
// Reports:
//   {"id": "a", "event": "connect"} | {"id": "a", "event": "connect_error", "message": ...}
//   {"id": "a", "event": "<listened event>", "args": [...]}
//   {"id": "a", "event": "ack", "args": [...]}
//   {"id": "a", "event": "disconnect", "reason": ...}
//   {"error": "..."} for a command that could not be run
"use strict";

const readline = require("readline");
const clients = {
  v4: require("socket.io-client"),
  v2: require("socket.io-client-v2"),
};

const sockets = new Map();

function report(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function connect(c) {
  const version = c.client || "v4";
  const io = clients[version];
  const url = c.url.replace(/\/$/, "") + (c.namespace && c.namespace !== "/" ? c.namespace : "");
  const opts = {
    path: c.path || "/socket.io",
    reconnection: false,
    forceNew: true,
    transports: c.transports || ["polling", "websocket"],
  };
  if (c.auth) {
    if (version === "v2") opts.query = c.auth;
    else opts.auth = c.auth;
  }
  const socket = io(url, opts);
  sockets.set(c.id, socket);
  socket.on("connect", () => report({ id: c.id, event: "connect", sid: socket.id }));
  socket.on("connect_error", (err) =>
    report({ id: c.id, event: "connect_error", message: err && err.message, data: err && err.data }),
  );
  socket.on("error", (err) => report({ id: c.id, event: "connect_error", message: String(err) }));
  socket.on("disconnect", (reason) => report({ id: c.id, event: "disconnect", reason }));
  for (const name of c.listen || ["session_confirm", "bot_uttered"]) {
    socket.on(name, (...args) => report({ id: c.id, event: name, args }));
  }
}

function emit(c) {
  const socket = sockets.get(c.id);
  if (!socket) return report({ error: "no socket " + c.id });
  const args = c.args || [];
  if (c.ack) {
    socket.emit(c.event, ...args, (...ackArgs) => report({ id: c.id, event: "ack", args: ackArgs }));
  } else {
    socket.emit(c.event, ...args);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let c;
  try {
    c = JSON.parse(line);
  } catch (e) {
    return report({ error: "bad command: " + e.message });
  }
  try {
    if (c.cmd === "connect") connect(c);
    else if (c.cmd === "emit") emit(c);
    else if (c.cmd === "disconnect") {
      const s = sockets.get(c.id);
      if (s) s.disconnect();
      sockets.delete(c.id);
    } else report({ error: "unknown command " + c.cmd });
  } catch (e) {
    report({ error: String(e && e.stack ? e.stack : e) });
  }
});
rl.on("close", () => {
  for (const s of sockets.values()) s.disconnect();
  process.exit(0);
});
report({ ready: true });
