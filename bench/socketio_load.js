#!/usr/bin/env node
// socket.io load benchmark: many concurrent web-chat users, each sending a message every
// few seconds; prints palaver's resident memory and the reply latency (p50/p90/p99/max).
// It is a measuring tool: it asserts nothing. See bench/README.md ("socket.io").
//
//   cargo build --profile fastbench --bin palaver
//   (cd tests/browser && npm ci)          # socket.io-client from npm
//   node bench/socketio_load.js --palaver $CARGO_TARGET_DIR/fastbench/palaver \
//        --connections 5000 --interval 3 --seconds 60
//
// It starts palaver itself (a temp dir with a one-rule bot whose credentials.yml has
// `socketio:` with session_persistence), opens the connections over WebSocket at
// --ramp per second, waits until all have their session, then each socket sends
// `/greet` every --interval seconds (random phase) and times the `bot_uttered` answer.
// A socket whose previous message is still unanswered skips its turn (counted).
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const net = require("net");
const { spawn, execSync } = require("child_process");
const { io } = require(path.join(__dirname, "..", "tests", "browser", "node_modules", "socket.io-client"));

function args() {
  const a = {
    palaver: process.env.PALAVER_BIN || "",
    connections: 5000,
    interval: 3,
    seconds: 60,
    ramp: 500,
    store: "sqlite",
    json: "",
  };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, "");
    if (!(k in a)) throw new Error(`unknown flag --${k}`);
    const v = argv[++i];
    a[k] = typeof a[k] === "number" ? Number(v) : v;
  }
  if (!a.palaver) {
    const target = process.env.CARGO_TARGET_DIR || path.join(__dirname, "..", "target");
    a.palaver = path.join(target, "fastbench", "palaver");
  }
  if (!fs.existsSync(a.palaver)) throw new Error(`${a.palaver} not found: cargo build --profile fastbench --bin palaver`);
  if (!["sqlite", "memory"].includes(a.store)) throw new Error("--store sqlite|memory");
  return a;
}

const DOMAIN = `version: "3.1"
intents: [greet]
responses:
  utter_greet:
    - text: "hi"
`;
const RULES = `version: "3.1"
rules:
  - rule: greet
    steps:
      - intent: greet
      - action: utter_greet
`;
const CREDENTIALS = "socketio:\n  session_persistence: true\n";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function rssMib(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const m = status.match(/VmRSS:\s+(\d+)\s+kB/);
    return m ? Number(m[1]) / 1024 : null;
  } catch (_) {
    return null;
  }
}

function cpuSeconds(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    // utime + stime, in clock ticks (100 per second on Linux).
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch (_) {
    return null;
  }
}

async function startPalaver(a) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "palaver-sio-bench-"));
  const project = path.join(dir, "project");
  fs.mkdirSync(path.join(project, "data"), { recursive: true });
  fs.writeFileSync(path.join(project, "domain.yml"), DOMAIN);
  fs.writeFileSync(path.join(project, "config.yml"), "language: en\npolicies:\n  - name: RulePolicy\n");
  fs.writeFileSync(path.join(project, "data", "rules.yml"), RULES);
  fs.writeFileSync(path.join(project, "credentials.yml"), CREDENTIALS);
  fs.writeFileSync(path.join(dir, "endpoints.yml"), a.store === "memory" ? "tracker_store:\n  type: in_memory\n" : "");
  const port = await freePort();
  const log = fs.openSync(path.join(dir, "server.log"), "w");
  const env = { ...process.env, RUST_LOG: "warn", NO_COLOR: "1" };
  for (const k of Object.keys(env)) if (k.startsWith("PALAVER_")) delete env[k];
  const child = spawn(
    a.palaver,
    ["run", project, "--port", String(port), "--interface", "127.0.0.1", "--endpoints", "endpoints.yml",
      "--credentials", path.join(project, "credentials.yml")],
    { cwd: dir, env, stdio: ["ignore", log, log] },
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (child.exitCode !== null) throw new Error("palaver exited: " + fs.readFileSync(path.join(dir, "server.log"), "utf8"));
    try {
      const r = await fetch(url + "/");
      if (r.ok) break;
    } catch (_) {}
    if (Date.now() > deadline) throw new Error("palaver did not start in 30 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = () => {
    child.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { url, pid: child.pid, stop, dir };
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main() {
  const a = args();
  let nofile = "?";
  try {
    nofile = execSync("sh -c 'ulimit -n'").toString().trim();
  } catch (_) {}
  if (nofile !== "unlimited" && Number(nofile) < a.connections + 200) {
    throw new Error(`ulimit -n is ${nofile}: raise it above ${a.connections + 200} (ulimit -n 20000)`);
  }
  const server = await startPalaver(a);
  process.on("exit", server.stop);
  process.on("SIGINT", () => process.exit(130));
  const cpu0 = cpuSeconds(server.pid);
  const clientCpu0 = process.cpuUsage();
  const load0 = os.loadavg()[0];
  const memory = { idle_mib: rssMib(server.pid) };
  console.error(`palaver up at ${server.url} (pid ${server.pid}, ${memory.idle_mib.toFixed(1)} MiB); ulimit -n ${nofile}`);

  // ---- connect ---------------------------------------------------------------------
  const sockets = [];
  let connectErrors = 0;
  let firstError = null;
  const latencies = [];
  const totals = { sent: 0, answered: 0, skipped: 0, unanswered: 0 };
  let measuring = false;
  const t0 = Date.now();
  await new Promise((resolve) => {
    let started = 0;
    let settled = 0;
    const done = () => {
      settled++;
      if (settled === a.connections) resolve();
    };
    const tick = setInterval(() => {
      const batch = Math.min(Math.ceil(a.ramp / 10), a.connections - started);
      for (let i = 0; i < batch; i++) {
        const n = started++;
        const sessionId = `bench-${n}`;
        const s = io(server.url, { path: "/socket.io", transports: ["websocket"], reconnection: false, timeout: 60000 });
        const user = { s, sessionId, pending: null, ready: false };
        s.on("connect", () => s.emit("session_request", { session_id: sessionId }));
        s.on("session_confirm", () => {
          if (!user.ready) {
            user.ready = true;
            done();
          }
        });
        s.on("connect_error", (e) => {
          connectErrors++;
          firstError = firstError || String(e && e.message);
          done();
        });
        s.on("bot_uttered", () => {
          if (user.pending === null) return;
          if (measuring) {
            latencies.push(performance.now() - user.pending);
            totals.answered++;
          }
          user.pending = null;
        });
        sockets.push(user);
      }
      if (started >= a.connections) clearInterval(tick);
    }, 100);
  });
  const connected = sockets.filter((u) => u.ready).length;
  memory.connected_mib = rssMib(server.pid);
  console.error(
    `${connected}/${a.connections} connected in ${((Date.now() - t0) / 1000).toFixed(1)} s ` +
      `(${connectErrors} errors${firstError ? ": " + firstError : ""}); palaver ${memory.connected_mib.toFixed(1)} MiB`,
  );

  // ---- load --------------------------------------------------------------------------
  const timers = [];
  const warmupMs = Math.min(5000, a.interval * 1000);
  for (const u of sockets.filter((x) => x.ready)) {
    const send = () => {
      if (u.pending !== null) {
        if (measuring) totals.skipped++;
        return;
      }
      u.pending = performance.now();
      if (measuring) totals.sent++;
      u.s.emit("user_uttered", { message: "/greet", session_id: u.sessionId });
    };
    timers.push(
      setTimeout(() => timers.push(setInterval(send, a.interval * 1000)), Math.random() * a.interval * 1000),
    );
  }
  await new Promise((r) => setTimeout(r, warmupMs));
  measuring = true;
  const loadStart = Date.now();
  const cpuLoad0 = cpuSeconds(server.pid);
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMib(server.pid) || 0);
  }, 500);
  await new Promise((r) => setTimeout(r, a.seconds * 1000));
  measuring = false;
  const elapsed = (Date.now() - loadStart) / 1000;
  const cpuLoad1 = cpuSeconds(server.pid);
  clearInterval(sampler);
  timers.forEach((t) => clearInterval(t));
  totals.unanswered = sockets.filter((u) => u.pending !== null).length;
  memory.peak_mib = Math.max(peak, rssMib(server.pid) || 0);
  const cpu1 = cpuSeconds(server.pid);
  const clientCpu = process.cpuUsage(clientCpu0);
  for (const u of sockets) u.s.disconnect();
  await new Promise((r) => setTimeout(r, 2000));
  memory.after_disconnect_mib = rssMib(server.pid);

  latencies.sort((x, y) => x - y);
  const ms = (v) => (v === null ? null : Math.round(v * 100) / 100);
  const result = {
    machine: `${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM`,
    palaver: a.palaver,
    store: a.store,
    connections: a.connections,
    connected,
    connect_errors: connectErrors,
    interval_s: a.interval,
    measured_s: Math.round(elapsed),
    messages_sent: totals.sent,
    replies: totals.answered,
    replies_per_s: Math.round(totals.answered / elapsed),
    skipped_turns: totals.skipped,
    unanswered_at_end: totals.unanswered,
    latency_ms: {
      p50: ms(percentile(latencies, 50)),
      p90: ms(percentile(latencies, 90)),
      p99: ms(percentile(latencies, 99)),
      max: ms(latencies[latencies.length - 1] ?? null),
    },
    palaver_rss_mib: Object.fromEntries(Object.entries(memory).map(([k, v]) => [k, v === null ? null : Math.round(v)])),
    palaver_cpu_s: cpu0 !== null && cpu1 !== null ? Math.round((cpu1 - cpu0) * 10) / 10 : null,
    // palaver's CPU per answered message in the measured window: the figure that
    // depends least on how busy the rest of the machine is.
    palaver_cpu_ms_per_reply:
      cpuLoad0 !== null && cpuLoad1 !== null && totals.answered
        ? Math.round(((cpuLoad1 - cpuLoad0) * 1000 * 1000) / totals.answered) / 1000
        : null,
    client_cpu_s: Math.round((clientCpu.user + clientCpu.system) / 1e5) / 10,
    wall_s: Math.round((Date.now() - t0) / 1000),
    load_average_1m: { start: Math.round(load0 * 10) / 10, end: Math.round(os.loadavg()[0] * 10) / 10 },
  };
  console.log(JSON.stringify(result, null, 2));
  if (a.json) fs.writeFileSync(a.json, JSON.stringify(result, null, 2) + "\n");
  process.exit(0);
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
