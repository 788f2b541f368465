"use strict";
// The robutler playground: a chat with one agent over its Chat Completions route.
// No framework and no build step. Agent output only ever reaches the page through
// text nodes (textContent / Text.appendData), never as HTML.
(() => {
  const config = JSON.parse(document.getElementById("robutler-config").textContent);
  const base = config.base || "";
  const KEY_STORE = "robutler.playground.apiKey";
  const $ = (id) => document.getElementById(id);
  const ui = {
    agent: $("agent"), other: $("agent-other"), newChat: $("new-chat"),
    keyRow: $("key-row"), key: $("api-key"), log: $("log"), empty: $("empty"),
    form: $("composer"), input: $("input"), send: $("send"), stop: $("stop"),
  };
  let history = [];
  let controller = null;

  // ---- server-sent events, decoded the way the official openai client does -----------

  // Splits text into lines at CR, LF or CRLF, also when a CRLF spans two chunks.
  class LineSplitter {
    constructor() { this.buffer = ""; this.skipLF = false; }
    feed(text) {
      const lines = [];
      let start = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c !== 10 && c !== 13) continue;
        if (this.skipLF && c === 10 && i === start) { this.skipLF = false; start = i + 1; continue; }
        lines.push(this.buffer + text.slice(start, i));
        this.buffer = "";
        this.skipLF = c === 13;
        start = i + 1;
      }
      if (start < text.length) { this.skipLF = false; this.buffer += text.slice(start); }
      return lines;
    }
    finish() {
      const rest = this.buffer;
      this.buffer = "";
      return rest ? [rest] : [];
    }
  }

  // One SSE event per blank line: `data:` lines joined, comments (':') ignored.
  class SSEDecoder {
    constructor() { this.event = null; this.data = []; this.id = null; this.retry = null; }
    decode(line) {
      if (line === "") {
        if (!this.event && !this.data.length && !this.id && this.retry === null) return null;
        const sse = { event: this.event, data: this.data.join("\n"), id: this.id, retry: this.retry };
        this.event = null; this.data = []; this.retry = null;
        return sse;
      }
      if (line.startsWith(":")) return null;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id") { if (!value.includes("\0")) this.id = value; }
      else if (field === "retry") { if (/^\d+$/.test(value)) this.retry = Number(value); }
      return null;
    }
  }

  // Reads the whole body, calling onEvent(event) for each event before `data: [DONE]`;
  // onEvent returns true to ignore the rest. The body is drained to its end either way,
  // so the server sees a completed stream, not a client that hung up.
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const utf8 = new TextDecoder();
    const lines = new LineSplitter();
    const sse = new SSEDecoder();
    let finished = false;
    const take = (batch) => {
      for (const line of batch) {
        const event = sse.decode(line);
        if (!event || finished) continue;
        if (event.data.startsWith("[DONE]")) finished = true;
        else if (onEvent(event)) finished = true;
      }
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      take(lines.feed(utf8.decode(value, { stream: true })));
    }
    take(lines.feed(utf8.decode()));
    take(lines.finish()); // like the official client: an event with no blank line after it is dropped
  }

  // ---- the conversation view -----------------------------------------------------------

  function bubble(role, label) {
    ui.empty.hidden = true;
    const article = document.createElement("article");
    article.className = `msg ${role}`;
    const head = document.createElement("div");
    head.className = "role";
    head.textContent = label;
    const content = document.createElement("div");
    content.className = "content";
    article.append(head, content);
    ui.log.append(article);
    return { article, content };
  }

  function scrollDown() { ui.log.scrollTop = ui.log.scrollHeight; }

  function userMessage(text) {
    const { content } = bubble("user", "you");
    content.textContent = text;
    scrollDown();
  }

  // One assistant answer: its text, tool calls, error and the request's facts.
  class Answer {
    constructor(agent, started) {
      const { article, content } = bubble("assistant", agent);
      this.article = article;
      this.article.classList.add("streaming");
      this.text = document.createTextNode("");
      content.append(this.text);
      this.started = started;
      this.firstToken = null;
      this.tools = [];
      this.meta = document.createElement("div");
      this.meta.className = "meta";
      this.article.append(this.meta);
      this.facts = {};
    }
    fact(name, label, value) {
      let item = this.facts[name];
      if (!item) {
        item = document.createElement("span");
        item.className = `fact-${name}`;
        this.facts[name] = item;
        this.meta.append(item);
      }
      item.textContent = label ? `${label} ${value}` : value;
    }
    token() {
      if (this.firstToken !== null) return;
      this.firstToken = performance.now() - this.started;
      this.fact("ttft", "first token", `${Math.round(this.firstToken)} ms`);
    }
    appendText(piece) {
      this.token();
      this.text.appendData(piece);
    }
    toolDelta(delta) {
      this.token();
      const index = Number.isInteger(delta.index) ? delta.index : this.tools.length;
      let call = this.tools[index];
      if (!call) {
        const box = document.createElement("div");
        box.className = "tool";
        const name = document.createElement("div");
        name.className = "tool-name";
        const args = document.createElement("pre");
        args.className = "tool-args";
        box.append(name, args);
        this.article.insertBefore(box, this.meta);
        call = { id: "", type: "function", name: "", args: "", nameEl: name, argsEl: args };
        this.tools[index] = call;
      }
      const fn = delta.function || {};
      if (typeof delta.id === "string") call.id = delta.id;
      if (typeof fn.name === "string") call.name += fn.name;
      if (typeof fn.arguments === "string") call.args += fn.arguments;
      call.nameEl.textContent = call.name;
      call.argsEl.textContent = call.args;
    }
    chunk(chunk) {
      if (chunk.usage) this.usage(chunk.usage);
      for (const choice of Array.isArray(chunk.choices) ? chunk.choices : []) {
        if (choice.index) continue; // the page shows the first choice
        this.message(choice.delta || {});
        if (choice.finish_reason) this.fact("finish", "finish", choice.finish_reason);
      }
    }
    message(message) {
      if (typeof message.content === "string" && message.content) this.appendText(message.content);
      if (typeof message.refusal === "string" && message.refusal) this.appendText(message.refusal);
      if (Array.isArray(message.tool_calls)) message.tool_calls.forEach((d) => this.toolDelta(d));
    }
    completion(body) { // a JSON answer where a stream was asked for
      const choice = (body.choices || [])[0] || {};
      const message = choice.message || {};
      this.message({ ...message, tool_calls: undefined });
      (message.tool_calls || []).forEach((call, index) => this.toolDelta({ ...call, index }));
      if (choice.finish_reason) this.fact("finish", "finish", choice.finish_reason);
      if (body.usage) this.usage(body.usage);
    }
    usage(usage) {
      const n = (v) => (Number.isFinite(v) ? v : "?");
      this.fact("usage", "tokens",
        `${n(usage.prompt_tokens)} in, ${n(usage.completion_tokens)} out, ${n(usage.total_tokens)} total`);
    }
    requestId(id) { if (id) this.fact("request-id", "request id", id); }
    error(message) {
      const box = document.createElement("div");
      box.className = "error";
      box.setAttribute("role", "alert");
      box.textContent = message;
      this.article.insertBefore(box, this.meta);
    }
    end(note) {
      this.article.classList.remove("streaming");
      for (const call of this.tools) {
        if (!call) continue;
        try { call.argsEl.textContent = JSON.stringify(JSON.parse(call.args), null, 2); } catch (_) { /* shown as sent */ }
      }
      if (note) this.fact("note", "", note);
      this.fact("total", "total", `${Math.round(performance.now() - this.started)} ms`);
      scrollDown();
    }
    // The assistant message that goes into the history of the next request.
    asMessage() {
      const text = this.text.data;
      const calls = this.tools.filter(Boolean).map((c) => ({
        id: c.id, type: c.type, function: { name: c.name, arguments: c.args },
      }));
      if (!text && !calls.length) return null;
      const message = { role: "assistant", content: text || null };
      if (calls.length) message.tool_calls = calls;
      return message;
    }
  }

  // ---- talking to the server -----------------------------------------------------------

  function apiKey() {
    try { return sessionStorage.getItem(KEY_STORE) || ""; } catch (_) { return ""; }
  }

  function headers(json) {
    const out = json ? { "content-type": "application/json" } : {};
    const key = apiKey();
    if (key) out.authorization = `Bearer ${key}`;
    return out;
  }

  function showKeyField() { ui.keyRow.hidden = false; }

  function agentName() {
    return (ui.other.value.trim() || ui.agent.value || "").trim();
  }

  async function errorText(response) {
    let detail = response.statusText || "";
    try {
      const body = await response.json();
      if (body && body.error && typeof body.error.message === "string") detail = body.error.message;
      else if (body && typeof body.detail === "string") detail = body.detail;
    } catch (_) { /* not JSON */ }
    return `Error ${response.status}: ${detail}`;
  }

  function busy(on) {
    ui.send.disabled = on;
    ui.stop.disabled = !on;
    ui.agent.disabled = on;
    ui.other.disabled = on;
  }

  async function send() {
    const text = ui.input.value;
    const agent = agentName();
    if (controller || !text.trim()) return;
    if (!agent) { ui.agent.focus(); return; }
    ui.input.value = "";
    userMessage(text);
    const user = { role: "user", content: text };
    const started = performance.now();
    const answer = new Answer(agent, started);
    controller = new AbortController();
    busy(true);
    let note = "";
    let focus = ui.input;
    try {
      const response = await fetch(`${base}/${encodeURIComponent(agent)}/chat/completions`, {
        method: "POST",
        headers: headers(true),
        body: JSON.stringify({
          model: agent,
          messages: [...history, user],
          stream: true,
          stream_options: { include_usage: true },
        }),
        signal: controller.signal,
      });
      answer.requestId(response.headers.get("x-request-id"));
      if (!response.ok) {
        answer.error(await errorText(response));
        if (response.status === 401) { showKeyField(); focus = ui.key; }
        if (!ui.input.value) ui.input.value = text; // not sent: ready to try again
        return;
      }
      history.push(user);
      if ((response.headers.get("content-type") || "").includes("text/event-stream")) {
        await readEvents(response, (event) => {
          let data;
          try { data = JSON.parse(event.data); } catch (_) {
            answer.error(`The stream sent data that is not JSON: ${event.data.slice(0, 200)}`);
            return true;
          }
          if (data && data.error) {
            const message = data.error.message;
            answer.error(typeof message === "string" && message ? message : "An error occurred during streaming");
            return true;
          }
          answer.chunk(data);
          return false;
        });
      } else {
        answer.completion(await response.json());
      }
    } catch (err) {
      if (err && err.name === "AbortError") note = "stopped";
      else answer.error(`Network error: ${err && err.message ? err.message : err}`);
    } finally {
      const message = answer.asMessage();
      if (message && history[history.length - 1] === user) history.push(message);
      answer.end(note);
      controller = null;
      busy(false);
      focus.focus();
    }
  }

  // ---- wiring ----------------------------------------------------------------------------

  function addAgent(name) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    ui.agent.append(option);
  }

  function setAgents(names) {
    const current = ui.agent.value || config.agent;
    ui.agent.replaceChildren();
    const unique = [...new Set(names)];
    if (config.agent && !unique.includes(config.agent)) unique.unshift(config.agent);
    unique.forEach(addAgent);
    if (current && unique.includes(current)) ui.agent.value = current;
  }

  // With keys the page comes knowing nothing of the server: it asks, with the key.
  let serverKnown = !config.keys;
  const EMPTY_TEXT = ui.empty.textContent;
  async function loadServer() {
    if (serverKnown) return;
    if (!apiKey()) {
      ui.empty.textContent = "This server wants an API key: enter it above to see its agents.";
      return;
    }
    try {
      const response = await fetch(`${base}${config.info}`, { headers: headers(false) });
      if (!response.ok) { ui.empty.textContent = await errorText(response); return; }
      const info = await response.json();
      if (serverKnown) return;
      serverKnown = true;
      config.title = info.title; config.dynamic = info.dynamic; config.models = info.models;
      describeServer(info.agents || []);
      ui.empty.textContent = EMPTY_TEXT;
      refreshAgents();
    } catch (err) {
      ui.empty.textContent = `Network error: ${err && err.message ? err.message : err}`;
    }
  }

  function describeServer(agents) {
    setAgents(agents);
    if (config.dynamic) ui.other.hidden = false;
    else if (!ui.agent.options.length) ui.empty.textContent = "This server has no agents yet.";
    if (config.title) document.title = `${config.title} - playground`;
  }

  async function refreshAgents() { // the OpenAI models list, where the server has one
    if (!config.models || !serverKnown) return;
    try {
      const response = await fetch(`${base}${config.models}`, { headers: headers(false) });
      if (!response.ok) return;
      const body = await response.json();
      const ids = (body.data || []).map((m) => m && m.id).filter((id) => typeof id === "string");
      if (ids.length) setAgents(ids);
    } catch (_) { /* keep the list the page came with */ }
  }

  function newChat() {
    if (controller) controller.abort();
    history = [];
    ui.log.replaceChildren(ui.empty);
    ui.empty.hidden = false;
    ui.input.focus();
  }

  if (serverKnown) describeServer(config.agents || []);
  else setAgents([]);
  ui.key.value = apiKey();
  if (config.keys || ui.key.value) showKeyField();
  ui.keyRow.addEventListener("submit", (event) => { event.preventDefault(); ui.input.focus(); });
  ui.key.addEventListener("input", () => {
    try { sessionStorage.setItem(KEY_STORE, ui.key.value.trim()); } catch (_) { /* storage off */ }
    clearTimeout(keyTimer);
    keyTimer = setTimeout(loadServer, 250);
  });
  ui.agent.addEventListener("change", () => { ui.other.value = ""; newChat(); });
  ui.other.addEventListener("change", newChat);
  ui.newChat.addEventListener("click", newChat);
  ui.stop.addEventListener("click", () => { if (controller) controller.abort(); });
  ui.form.addEventListener("submit", (event) => { event.preventDefault(); send(); });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  let keyTimer = 0;
  loadServer();
  refreshAgents();
  ui.input.focus();
})();
