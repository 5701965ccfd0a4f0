// Browser test 2 (run by tests/socketio_browser.rs): a human agent drives the handoff
// console on a phone-sized screen with the keyboard only. A socket.io user (the
// socket.io-client package, as widgets use it) asks for a human; the agent signs in,
// finds the paused conversation at the top of the list (newest first, marked paused),
// opens it, answers, and resumes the bot. The user receives both through socket.io.
//
// Environment: PALAVER_URL, PALAVER_TOKEN, PALAVER_ARTIFACTS, CHROMIUM (see
// browser_support.js) and SESSION_ID (the user's session id, session_persistence on).
// Prints one JSON line {"received": [...bot_uttered payloads...]} on success.
"use strict";

const { io } = require("socket.io-client");
const { launch, step, shot, fail, env } = require("./browser_support");

const AGENT = "Ada";
const HUMAN_REPLY = "Hi, Ada here. I have reset your password.";

function userSocket(url, sessionId) {
  const received = [];
  const waiters = [];
  const socket = io(url, { path: "/socket.io", transports: ["websocket"], reconnection: false });
  socket.on("bot_uttered", (msg) => {
    received.push(msg);
    for (const w of waiters.splice(0)) w();
  });
  const hear = (text, ms = 15000) =>
    new Promise((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`the user never heard "${text}"; got ${JSON.stringify(received)}`)), ms);
      const check = () => {
        if (received.some((m) => m && typeof m.text === "string" && m.text.includes(text))) {
          clearTimeout(deadline);
          resolve();
        } else waiters.push(check);
      };
      check();
    });
  const ready = new Promise((resolve, reject) => {
    socket.on("connect_error", reject);
    socket.on("session_confirm", resolve);
    socket.on("connect", () => socket.emit("session_request", { session_id: sessionId }));
  });
  const say = (message) => socket.emit("user_uttered", { message, session_id: sessionId });
  return { socket, received, hear, ready, say };
}

async function main() {
  const { url, token, artifacts } = env();
  const sessionId = process.env.SESSION_ID;
  if (!sessionId) throw new Error("SESSION_ID is not set");
  const user = userSocket(url, sessionId);
  await user.ready;
  await step("the socket.io user is handed to a human", async () => {
    user.say("/greet");
    await user.hear("Hi! How can I help?");
    user.say("/human_handoff");
    await user.hear("Let me get a human");
  });

  const browser = await launch();
  try {
    const ctx = await browser.newContext({
      viewport: { width: 390, height: 780 },
      isMobile: true,
      hasTouch: true,
      deviceScaleFactor: 2,
    });
    const page = await ctx.newPage();
    page.on("console", (m) => m.type() === "error" && process.stderr.write("[console] " + m.text() + "\n"));
    const kb = page.keyboard;

    await step("sign in with the keyboard", async () => {
      await page.goto(url + "/console/");
      await page.locator("#login-token").waitFor();
      // The sign-in field has the focus: type the token, Enter.
      await kb.type("wrong-token");
      await kb.press("Enter");
      await page.locator("#login-error", { hasText: "not accepted" }).waitFor();
      await page.locator("#login-token").focus();
      await kb.type(token);
      await kb.press("Enter");
      await page.locator("#app:not([hidden])").waitFor();
      await page.locator("#agent-name").focus();
      await kb.type(AGENT);
      await kb.press("Enter");
    });

    await step("the newest conversation is first and marked paused", async () => {
      const first = page.locator("#conversations li").first();
      await page.locator(`#conversations li[data-id="${sessionId}"][data-paused="true"]`).waitFor({ timeout: 10000 });
      const firstId = await first.getAttribute("data-id");
      if (firstId !== sessionId) throw new Error(`the list starts with ${firstId}, not the newest ${sessionId}`);
      const others = await page.locator('#conversations li:not([data-paused="true"])').count();
      if (others < 1) throw new Error("the unpaused conversations are not listed");
      await first.locator(".badge.paused").waitFor();
    });
    await shot(page, artifacts, "console-phone-1-list.png");

    await step("open it with the keyboard (arrow keys, Enter)", async () => {
      // Focus the last row, then arrow up to the first one and open it.
      await page.locator("#conversations li button").last().focus();
      const n = await page.locator("#conversations li button").count();
      for (let i = 0; i < n; i++) await kb.press("ArrowUp");
      const focused = await page.evaluate(() => document.activeElement && document.activeElement.dataset.id);
      if (focused !== sessionId) throw new Error(`ArrowUp focused ${focused}`);
      await kb.press("Enter");
      await page.locator("#conv-title", { hasText: sessionId }).waitFor();
      await page.locator("#conv-state", { hasText: "paused" }).waitFor();
      await page.locator("#transcript li.bot", { hasText: "Let me get a human" }).waitFor();
      // Opening a conversation puts the cursor in the answer box.
      const active = await page.evaluate(() => document.activeElement && document.activeElement.id);
      if (active !== "reply") throw new Error(`focus is on ${active}, not the answer box`);
    });

    await step("the transcript updates live", async () => {
      user.say("is anyone there?");
      await page.locator("#transcript li.user", { hasText: "is anyone there?" }).waitFor({ timeout: 10000 });
    });

    await step("answer with Enter; the user gets it through socket.io", async () => {
      await kb.type(HUMAN_REPLY);
      await kb.press("Enter");
      await user.hear(HUMAN_REPLY);
      await page.locator("#transcript li.agent", { hasText: "agent " + AGENT }).waitFor();
    });
    await shot(page, artifacts, "console-phone-2-answered.png");

    await step("resume with Alt+R; the followup tells the user the bot is back", async () => {
      await page.locator("#followup").selectOption("action_resume_conversation");
      await page.locator("#reply").focus();
      await kb.press("Alt+r");
      await page.locator("#conv-state", { hasText: "bot answering" }).waitFor();
      await user.hear("The bot is back.");
      // The list (hidden on a phone while a conversation is open) no longer marks it.
      await page
        .locator(`#conversations li[data-id="${sessionId}"]:not([data-paused])`)
        .waitFor({ state: "attached", timeout: 10000 });
    });
    await step("the bot answers the user again", async () => {
      user.say("/bot_challenge");
      await user.hear("I am a bot, powered by palaver.");
      await page.locator("#transcript li.bot", { hasText: "I am a bot" }).waitFor({ timeout: 10000 });
    });
    await shot(page, artifacts, "console-phone-3-resumed.png");

    await step("the console reads well on a wide screen too", async () => {
      await page.setViewportSize({ width: 1200, height: 760 });
      await shot(page, artifacts, "console-desktop.png");
    });
    process.stdout.write(JSON.stringify({ received: user.received }) + "\n");
  } finally {
    user.socket.disconnect();
    await browser.close();
  }
}

main().catch(fail);
