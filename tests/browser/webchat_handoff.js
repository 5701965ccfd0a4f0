// Browser test 1 (run by tests/socketio_browser.rs): a page embedding rasa-webchat from
// npm, unchanged, talks to palaver running examples/handoff_bot in headless Chromium.
// The user greets the bot, asks for a human (with the bot's quick reply button), gets
// the human agent's answer pushed from the handoff console (a second page, driven like
// an agent would), is resumed, and the bot answers again.
//
// Environment: PALAVER_URL (the server), PALAVER_TOKEN (its --auth-token),
// PALAVER_ARTIFACTS (folder for screenshots), CHROMIUM (default /usr/bin/chromium).
// Prints one JSON line {"session_id": ...} on success; exits non-zero on any failure.
"use strict";

const { launch, serveWebchat, step, shot, fail, env } = require("./browser_support");

const AGENT = "Grace";
const HUMAN_REPLY = "Hello, this is Grace from support. Your order ships today.";

async function main() {
  const { url, token, artifacts } = env();
  const site = await serveWebchat(url);
  const browser = await launch();
  try {
    // ---- the user, on a site that embeds the widget ------------------------------
    const userCtx = await browser.newContext({ viewport: { width: 420, height: 720 } });
    const user = await userCtx.newPage();
    user.on("console", (m) => m.type() === "error" && process.stderr.write("[webchat] " + m.text() + "\n"));
    await step("the widget connects and the initPayload is answered", async () => {
      await user.goto(site.url + "/webchat.html");
      await user.locator(".rw-response", { hasText: "Hi! How can I help?" }).first().waitFor({ timeout: 20000 });
    });
    const sessionId = await user.evaluate(() => {
      const s = JSON.parse(sessionStorage.getItem("chat_session") || "{}");
      return s.session_id;
    });
    if (!sessionId) throw new Error("rasa-webchat kept no session id");

    const say = async (text) => {
      const box = user.locator(".rw-new-message");
      await box.fill(text);
      await box.press("Enter");
      await user.locator(".rw-client", { hasText: text }).last().waitFor();
    };
    const hear = (text) => user.locator(".rw-response", { hasText: text }).first().waitFor({ timeout: 15000 });

    await step("the bot offers a quick reply; the user clicks it and is handed over", async () => {
      await say("/bot_challenge");
      await hear("I am a bot, powered by palaver.");
      await user.locator(".rw-reply", { hasText: "Talk to a human" }).waitFor();
      await shot(user, artifacts, "webchat-0-quick-reply.png");
      await user.locator(".rw-reply", { hasText: "Talk to a human" }).click();
      await hear("Let me get a human for you.");
    });
    await shot(user, artifacts, "webchat-1-handed-over.png");

    // ---- the agent, in palaver's console ------------------------------------------
    const agentCtx = await browser.newContext({ viewport: { width: 1100, height: 720 } });
    const agent = await agentCtx.newPage();
    await step("the agent signs in to the console", async () => {
      await agent.goto(url + "/console/");
      await agent.locator("#login-token").fill(token);
      await agent.locator("#login-token").press("Enter");
      await agent.locator("#agent-name").fill(AGENT);
      await agent.locator("#agent-name").press("Enter");
    });
    const row = agent.locator(`#conversations li[data-id="${sessionId}"]`);
    await step("the console lists the conversation as paused", async () => {
      await row.waitFor({ timeout: 10000 });
      await agent.locator(`#conversations li[data-id="${sessionId}"][data-paused="true"]`).waitFor({ timeout: 10000 });
      await row.locator("button").click();
      await agent.locator("#transcript li.bot", { hasText: "Let me get a human" }).waitFor();
    });
    await step("the agent answers; the widget shows it", async () => {
      await agent.locator("#reply").fill(HUMAN_REPLY);
      await agent.locator("#reply").press("Enter");
      await agent.locator("#transcript li.agent", { hasText: HUMAN_REPLY }).waitFor();
      await hear(HUMAN_REPLY);
    });
    await shot(user, artifacts, "webchat-2-human-reply.png");
    await shot(agent, artifacts, "webchat-console-answered.png");

    await step("while paused, the bot stays quiet", async () => {
      await say("thanks, and when does it arrive?");
      await agent.locator("#transcript li.user", { hasText: "when does it arrive" }).waitFor({ timeout: 10000 });
      const bots = await user.locator(".rw-response").count();
      await user.waitForTimeout(500);
      if ((await user.locator(".rw-response").count()) !== bots) throw new Error("the bot answered while paused");
    });

    await step("the agent resumes the bot; the widget hears it is back", async () => {
      await agent.locator("#followup").selectOption("action_resume_conversation");
      await agent.locator("#resume").click();
      await agent.locator("#conv-state", { hasText: "bot answering" }).waitFor();
      await hear("The bot is back.");
    });
    await step("the bot answers the user again", async () => {
      await say("/goodbye");
      await hear("Bye!");
    });
    await shot(user, artifacts, "webchat-3-resumed.png");
    process.stdout.write(JSON.stringify({ session_id: sessionId }) + "\n");
  } finally {
    await browser.close();
    site.close();
  }
}

main().catch(fail);
