// Shared helpers of the browser tests: Debian's Chromium through playwright-core (no
// browser download), a tiny site that embeds rasa-webchat from npm unchanged, steps
// with readable failures, and screenshots.
"use strict";

const fs = require("fs");
const http = require("http");
const path = require("path");
const { chromium } = require("playwright-core");

function env() {
  const url = (process.env.PALAVER_URL || "").replace(/\/$/, "");
  if (!url) throw new Error("PALAVER_URL is not set");
  const artifacts = process.env.PALAVER_ARTIFACTS || path.join(__dirname, "..", "..", "test-artifacts");
  fs.mkdirSync(artifacts, { recursive: true });
  return { url, token: process.env.PALAVER_TOKEN || "", artifacts };
}

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // Root in a container: Chromium's sandbox needs user namespaces it may not have.
    // The machine's network is closed: keep Chromium from calling home.
    args: [
      "--no-sandbox",
      "--disable-dev-shm-usage",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

// Serves /webchat.html (the widget embedded as its README says) and /rasa-webchat.js
// (node_modules/rasa-webchat/lib/index.js as published) on another origin than palaver.
// (The widget also asks fonts.googleapis.com for a font; that fails on this closed
// network and changes nothing.)
function serveWebchat(palaverUrl) {
  const bundle = fs.readFileSync(require.resolve("rasa-webchat/lib/index.js"));
  const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shop with a chat</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>A shop</h1><div id="webchat"></div>
<script src="/rasa-webchat.js"></script>
<script>
  WebChat.default({
    socketUrl: ${JSON.stringify(palaverUrl)},
    socketPath: "/socket.io/",
    initPayload: "/greet",
    customData: { language: "en" },
    embedded: true,
    title: "palaver",
    params: { storage: "session" }
  }, document.getElementById("webchat"));
</script></body></html>`;
  const server = http.createServer((req, res) => {
    if (req.url === "/webchat.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(page);
    } else if (req.url === "/rasa-webchat.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(bundle);
    } else if (req.url === "/favicon.ico") {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({ url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() });
    });
  });
}

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
  } catch (e) {
    e.message = `step "${name}" failed: ${e.message}`;
    throw e;
  }
  process.stderr.write(`ok - ${name} (${Date.now() - started} ms)\n`);
}

async function shot(page, dir, name) {
  await page.screenshot({ path: path.join(dir, name), fullPage: true });
}

function fail(e) {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
}

module.exports = { env, launch, serveWebchat, step, shot, fail };
