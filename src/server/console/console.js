// palaver handoff console: plain JavaScript, no build step.
//
// Everything goes through palaver's HTTP API with the same auth as curl:
//   GET  ../conversations                  the list (newest first, paused marked)
//   GET  ../conversations/<id>/tracker     a transcript (polled while open)
//   POST ../conversations/<id>/tracker/events
//        {"event": "pause"}                                     pause the bot
//        [{"event": "resume"}, {"event": "followup", ...}]      resume (+ followup at once)
//        {"event": "bot", "text": ..., "metadata": {"human_agent": name}}   answer the user
// Answers and resumes use execute_side_effects=true&output_channel=latest, so they reach
// the user through the channel of their latest message (socket.io push, callback, ...).
"use strict";

(function () {
  const LIST_EVERY_MS = 3000;
  const TRANSCRIPT_EVERY_MS = 2000;
  const PAGE_SIZE = 50;
  const TOKEN_KEY = "palaver.console.token";
  const AGENT_KEY = "palaver.console.agent";
  const FOLLOWUP_KEY = "palaver.console.followup";

  const $ = (id) => document.getElementById(id);
  const state = {
    offset: 0,
    total: 0,
    selected: null,
    paused: false,
    transcriptKey: "",
    listBusy: false,
    transcriptBusy: false,
    timers: [],
  };

  // ---- auth ---------------------------------------------------------------
  function looksLikeJwt(t) {
    return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(t);
  }

  function jwtClaims(t) {
    try {
      const part = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part));
    } catch (_) {
      return null;
    }
  }

  class AuthError extends Error {}

  async function api(method, path, body, params) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const query = new URLSearchParams(params || {});
    const headers = { Accept: "application/json" };
    if (token && looksLikeJwt(token)) headers.Authorization = "Bearer " + token;
    else if (token) query.set("token", token);
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const qs = query.toString();
    const resp = await fetch("../" + path + (qs ? "?" + qs : ""), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    if (resp.status === 401 || resp.status === 403) {
      throw new AuthError(resp.status === 401 ? "The token or JWT was not accepted." : "This JWT may not use the console (role admin needed).");
    }
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
    if (!resp.ok) {
      const why = data && data.message ? data.message : resp.status + " " + resp.statusText;
      throw new Error(why);
    }
    return data;
  }

  function showLogin(message) {
    stopPolling();
    $("app").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("login-token").focus();
  }

  async function start() {
    try {
      await refreshList();
    } catch (e) {
      if (e instanceof AuthError) {
        showLogin(sessionStorage.getItem(TOKEN_KEY) ? e.message : "");
        return;
      }
      setStatus("Cannot reach the server: " + e.message);
    }
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = !sessionStorage.getItem(TOKEN_KEY);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!$("agent-name").value && token && looksLikeJwt(token)) {
      const claims = jwtClaims(token);
      const name = claims && claims.user && claims.user.username;
      if (name) setAgent(name);
    }
    loadFollowups();
    const fromHash = decodeURIComponent((location.hash.match(/^#c=(.*)$/) || [])[1] || "");
    if (fromHash) select(fromHash, false);
    stopPolling();
    state.timers.push(setInterval(() => poll(refreshList), LIST_EVERY_MS));
    state.timers.push(setInterval(() => poll(refreshTranscript), TRANSCRIPT_EVERY_MS));
  }

  function stopPolling() {
    state.timers.forEach(clearInterval);
    state.timers = [];
  }

  async function poll(fn) {
    if (document.hidden) return;
    try {
      await fn();
    } catch (e) {
      if (e instanceof AuthError) showLogin(e.message);
      else setStatus("Update failed: " + e.message);
    }
  }

  // ---- helpers --------------------------------------------------------------
  function setStatus(text) {
    $("status").textContent = text;
  }

  function setAgent(name) {
    $("agent-name").value = name;
    localStorage.setItem(AGENT_KEY, name);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function when(ts) {
    if (!ts) return "";
    const d = new Date(ts * 1000);
    const secs = Math.max(0, (Date.now() - d.getTime()) / 1000);
    if (secs < 60) return "just now";
    if (secs < 3600) return Math.floor(secs / 60) + " min ago";
    if (secs < 86400) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return d.toLocaleDateString();
  }

  function convPath(id, rest) {
    return "conversations/" + encodeURIComponent(id) + rest;
  }

  // ---- conversation list ------------------------------------------------------
  async function refreshList() {
    if (state.listBusy) return;
    state.listBusy = true;
    try {
      const params = { limit: PAGE_SIZE, offset: state.offset };
      if ($("only-paused").checked) params.paused = "true";
      const page = await api("GET", "conversations", undefined, params);
      state.total = page.total;
      renderList(page.conversations || []);
      $("prev-page").disabled = state.offset === 0;
      $("next-page").disabled = page.next_offset === null || page.next_offset === undefined;
      const last = Math.min(state.offset + PAGE_SIZE, page.total);
      $("page-info").textContent = page.total ? (state.offset + 1) + "–" + last + " of " + page.total : "none yet";
    } finally {
      state.listBusy = false;
    }
  }

  function renderList(items) {
    const ul = $("conversations");
    const focusedId = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.id : null;
    ul.replaceChildren();
    for (const c of items) {
      const li = el("li");
      li.dataset.id = c.sender_id;
      if (c.paused) li.dataset.paused = "true";
      const b = el("button");
      b.type = "button";
      b.dataset.id = c.sender_id;
      if (c.sender_id === state.selected) b.setAttribute("aria-current", "true");
      b.append(el("span", "id", c.sender_id), el("span", "when", when(c.latest_event_time)));
      const badge = el("span", c.paused ? "badge paused" : "badge", c.paused ? "paused" : "bot");
      b.append(badge);
      b.addEventListener("click", () => select(c.sender_id, true));
      li.append(b);
      ul.append(li);
      if (c.sender_id === focusedId) b.focus();
    }
  }

  function moveFocus(delta) {
    const buttons = Array.from($("conversations").querySelectorAll("button"));
    if (!buttons.length) return;
    let i = buttons.indexOf(document.activeElement);
    i = i < 0 ? 0 : Math.min(buttons.length - 1, Math.max(0, i + delta));
    buttons[i].focus();
  }

  // ---- one conversation ---------------------------------------------------------
  async function select(id, focusReply) {
    state.selected = id;
    state.transcriptKey = "";
    history.replaceState(null, "", "#c=" + encodeURIComponent(id));
    $("conv-title").textContent = id;
    $("app").classList.add("open");
    for (const b of $("conversations").querySelectorAll("button")) {
      if (b.dataset.id === id) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
    ["pause", "resume", "send", "reply"].forEach((x) => ($(x).disabled = false));
    $("transcript").replaceChildren();
    await poll(refreshTranscript);
    if (focusReply) $("reply").focus();
  }

  async function refreshTranscript() {
    const id = state.selected;
    if (!id || state.transcriptBusy) return;
    state.transcriptBusy = true;
    try {
      const tracker = await api("GET", convPath(id, "/tracker"), undefined, { include_events: "ALL" });
      if (id !== state.selected) return;
      const events = tracker.events || [];
      const key = events.length + ":" + tracker.paused + ":" + tracker.latest_event_time;
      if (key === state.transcriptKey) return;
      state.transcriptKey = key;
      state.paused = !!tracker.paused;
      const badge = $("conv-state");
      badge.hidden = false;
      badge.textContent = state.paused ? "paused: a human answers" : "bot answering";
      badge.className = state.paused ? "badge paused" : "badge";
      $("pause").disabled = state.paused;
      $("resume").disabled = !state.paused;
      renderTranscript(events);
    } finally {
      state.transcriptBusy = false;
    }
  }

  function renderTranscript(events) {
    const ol = $("transcript");
    const atBottom = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
    ol.replaceChildren();
    for (const e of events) {
      const item = describe(e);
      if (item) ol.append(item);
    }
    if (atBottom || ol.dataset.first !== "done") {
      ol.scrollTop = ol.scrollHeight;
      ol.dataset.first = "done";
    }
  }

  function describe(e) {
    const meta = e.metadata || {};
    switch (e.event) {
      case "user": {
        const li = el("li", "user");
        const intent = e.parse_data && e.parse_data.intent && e.parse_data.intent.name;
        li.append(el("span", "who", "user" + (e.input_channel ? " · " + e.input_channel : "") + " · " + when(e.timestamp)));
        li.append(document.createTextNode(e.text || (intent ? "/" + intent : "")));
        return li;
      }
      case "bot": {
        const human = meta.human_agent;
        const li = el("li", human ? "agent" : "bot");
        li.dataset.author = human ? "human" : "bot";
        li.append(el("span", "who", (human ? "agent " + human : "bot") + " · " + when(e.timestamp)));
        li.append(document.createTextNode(e.text || ""));
        const data = e.data || {};
        const buttons = data.buttons || data.quick_replies;
        if (Array.isArray(buttons) && buttons.length) {
          li.append(el("span", "extra", "buttons: " + buttons.map((b) => b.title).join(" | ")));
        }
        if (data.image) li.append(el("span", "extra", "image: " + data.image));
        if (data.custom) li.append(el("span", "extra", "custom: " + JSON.stringify(data.custom)));
        if (data.attachment) li.append(el("span", "extra", "attachment: " + JSON.stringify(data.attachment)));
        return li;
      }
      case "pause": return el("li", "system", "bot paused · " + when(e.timestamp));
      case "resume": return el("li", "system", "bot resumed · " + when(e.timestamp));
      case "restart": return el("li", "system", "conversation restarted");
      case "session_started": return el("li", "system", "new session · " + when(e.timestamp));
      case "followup": return el("li", "system", "followup: " + e.name);
      default: return null;
    }
  }

  async function postEvents(events, sideEffects) {
    const params = sideEffects ? { execute_side_effects: "true", output_channel: "latest" } : {};
    await api("POST", convPath(state.selected, "/tracker/events"), events, params);
    state.transcriptKey = "";
    await Promise.all([poll(refreshTranscript), poll(refreshList)]);
  }

  async function pause() {
    if (!state.selected) return;
    setStatus("Pausing…");
    try {
      await postEvents({ event: "pause" }, false);
      setStatus("Paused: the bot stays quiet until you resume it.");
    } catch (e) {
      handle(e);
    }
  }

  async function resume() {
    if (!state.selected) return;
    const followup = $("followup").value;
    const events = [{ event: "resume" }];
    if (followup) events.push({ event: "followup", name: followup });
    setStatus("Resuming…");
    try {
      await postEvents(events, true);
      setStatus("Resumed" + (followup ? " (ran " + followup + ")." : "."));
    } catch (e) {
      handle(e);
    }
  }

  async function reply(ev) {
    if (ev) ev.preventDefault();
    const text = $("reply").value.trim();
    if (!state.selected || !text) return;
    const agent = $("agent-name").value.trim();
    if (!agent) {
      setStatus("Type your name first: it is logged with your answer.");
      $("agent-name").focus();
      return;
    }
    $("send").disabled = true;
    try {
      await postEvents({ event: "bot", text, metadata: { human_agent: agent } }, true);
      $("reply").value = "";
      setStatus("Sent.");
    } catch (e) {
      handle(e);
    } finally {
      $("send").disabled = false;
      $("reply").focus();
    }
  }

  function handle(e) {
    if (e instanceof AuthError) showLogin(e.message);
    else setStatus("Failed: " + e.message);
  }

  async function loadFollowups() {
    let domain;
    try {
      domain = await api("GET", "domain");
    } catch (_) {
      return;
    }
    const names = new Set([...(domain.actions || []), ...Object.keys(domain.responses || {})]);
    const select = $("followup");
    const saved = localStorage.getItem(FOLLOWUP_KEY);
    select.replaceChildren(el("option", null, "nothing"));
    select.firstChild.value = "";
    for (const n of Array.from(names).sort()) {
      const o = el("option", null, n);
      o.value = n;
      select.append(o);
    }
    if (saved !== null && (saved === "" || names.has(saved))) select.value = saved;
    else if (names.has("action_resume_conversation")) select.value = "action_resume_conversation";
  }

  // ---- wiring -------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("agent-name").value = localStorage.getItem(AGENT_KEY) || "";
    $("agent-name").addEventListener("change", (e) => setAgent(e.target.value.trim()));
    $("agent-form").addEventListener("submit", (e) => {
      e.preventDefault();
      setAgent($("agent-name").value.trim());
      $("reply").focus();
    });
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("login-token").value.trim());
      $("login-token").value = "";
      start();
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("");
    });
    $("only-paused").addEventListener("change", () => {
      state.offset = 0;
      poll(refreshList);
    });
    $("prev-page").addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - PAGE_SIZE);
      poll(refreshList);
    });
    $("next-page").addEventListener("click", () => {
      state.offset += PAGE_SIZE;
      poll(refreshList);
    });
    $("conversations").addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown") { e.preventDefault(); moveFocus(1); }
      if (e.key === "ArrowUp") { e.preventDefault(); moveFocus(-1); }
    });
    $("pause").addEventListener("click", pause);
    $("resume").addEventListener("click", resume);
    $("followup").addEventListener("change", (e) => localStorage.setItem(FOLLOWUP_KEY, e.target.value));
    $("reply-form").addEventListener("submit", reply);
    $("reply").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) reply(e);
      if (e.key === "Escape") {
        const current = $("conversations").querySelector('button[aria-current="true"]');
        if (current) current.focus();
      }
    });
    $("back").addEventListener("click", () => {
      $("app").classList.remove("open");
      const current = $("conversations").querySelector('button[aria-current="true"]');
      if (current) current.focus();
    });
    document.addEventListener("keydown", (e) => {
      if (!e.altKey || $("app").hidden) return;
      if (e.key === "p" || e.key === "P") { e.preventDefault(); pause(); }
      if (e.key === "r" || e.key === "R") { e.preventDefault(); resume(); }
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !$("app").hidden) {
        poll(refreshList);
        poll(refreshTranscript);
      }
    });
    start();
  });
})();
