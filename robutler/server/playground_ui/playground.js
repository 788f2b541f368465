"use strict";
// The robutler playground: a chat with one agent over its Chat Completions or Responses
// route. No framework and no build step. Agent output reaches the page only as DOM nodes
// built here with textContent (the Markdown renderer below included), never as HTML.
(() => {
  const config = JSON.parse(document.getElementById("robutler-config").textContent);
  const base = config.base || "";
  const PREFIX = "robutler.playground.";
  const KEY_STORE = `${PREFIX}apiKey`; // sessionStorage: this tab only
  const HEADERS_STORE = `${PREFIX}headers`; // sessionStorage: headers may carry secrets
  const SETTINGS_STORE = `${PREFIX}settings:${base}`; // localStorage
  const AGENT_STORE = `${PREFIX}agent:${base}`; // localStorage: the agent last talked to
  const chatStore = (agent) => `${PREFIX}chat:${base}:${agent}`; // localStorage
  const $ = (id) => document.getElementById(id);
  const ui = {
    agent: $("agent"), other: $("agent-other"), newChat: $("new-chat"),
    keyRow: $("key-row"), key: $("api-key"), log: $("log"), empty: $("empty"),
    form: $("composer"), input: $("input"), send: $("send"), stop: $("stop"),
    settingsToggle: $("settings-toggle"), settings: $("settings"), api: $("api"),
    store: $("store"), storeField: $("store-field"), temperature: $("temperature"),
    maxTokens: $("max-tokens"), system: $("system"), headers: $("headers"),
    headersError: $("headers-error"),
  };
  const EMPTY_TEXT = ui.empty.textContent;
  let conversation = { agent: "", turns: [] };
  const views = new WeakMap(); // turn -> its view
  let controller = null;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function button(label, className, onClick) {
    const node = el("button", className, label);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  // ---- storage ---------------------------------------------------------------------------

  function load(storage, key, fallback) {
    try {
      const text = storage.getItem(key);
      return text === null ? fallback : JSON.parse(text);
    } catch (_) { return fallback; }
  }

  function save(storage, key, value) {
    try { storage.setItem(key, JSON.stringify(value)); return true; } catch (_) { return false; }
  }

  function apiKey() {
    if (!config.keys) return ""; // a server without keys is never sent one
    try { return sessionStorage.getItem(KEY_STORE) || ""; } catch (_) { return ""; }
  }

  // A conversation is kept per agent; when the browser's storage is full, the raw views of
  // older turns go first, then all of them.
  function saveConversation() {
    if (!conversation.agent) return;
    const key = chatStore(conversation.agent);
    if (!conversation.turns.length) {
      try { localStorage.removeItem(key); } catch (_) { /* storage off */ }
      return;
    }
    // Header values stay in this tab (they may be secrets); the raw view keeps their names.
    const hide = (raw) => {
      const headers = {};
      for (const [name, value] of Object.entries(raw.request.headers || {})) {
        headers[name] = name === "content-type" ? value : "***";
      }
      return { ...raw, request: { ...raw.request, headers } };
    };
    const turns = conversation.turns.map((t) => (t.raw ? { ...t, raw: hide(t.raw) } : t));
    if (save(localStorage, key, { ...conversation, turns })) return;
    const strip = (keep) => ({
      ...conversation,
      turns: turns.map((t, i) => (i >= keep ? t : { ...t, raw: undefined })),
    });
    if (!save(localStorage, key, strip(conversation.turns.length - 2))) {
      save(localStorage, key, strip(conversation.turns.length));
    }
  }

  function loadConversation(agent) {
    const stored = agent ? load(localStorage, chatStore(agent), null) : null;
    const turns = stored && Array.isArray(stored.turns) ? stored.turns.filter((t) => t && t.kind) : [];
    for (const t of turns) { delete t.streaming; delete t.callAt; } // a reload mid-answer
    conversation = { agent, turns };
    if (agent) save(localStorage, AGENT_STORE, agent);
    renderAll();
  }

  // ---- settings --------------------------------------------------------------------------

  function readSettings() {
    const s = load(localStorage, SETTINGS_STORE, {}) || {};
    ui.api.value = s.api === "responses" ? "responses" : "chat";
    ui.store.checked = s.store !== false;
    ui.temperature.value = typeof s.temperature === "string" ? s.temperature : "";
    ui.maxTokens.value = typeof s.maxTokens === "string" ? s.maxTokens : "";
    ui.system.value = typeof s.system === "string" ? s.system : "";
    try { ui.headers.value = sessionStorage.getItem(HEADERS_STORE) || ""; } catch (_) { /* off */ }
    showSettingsState();
  }

  function writeSettings() {
    save(localStorage, SETTINGS_STORE, {
      api: ui.api.value, store: ui.store.checked, temperature: ui.temperature.value,
      maxTokens: ui.maxTokens.value, system: ui.system.value,
    });
    try { sessionStorage.setItem(HEADERS_STORE, ui.headers.value); } catch (_) { /* off */ }
    showSettingsState();
  }

  function showSettingsState() {
    ui.storeField.hidden = ui.api.value !== "responses";
    const { error } = extraHeaders();
    ui.headersError.hidden = !error;
    ui.headersError.textContent = error || "";
  }

  function openSettings(focus) {
    ui.settings.hidden = false;
    ui.settingsToggle.setAttribute("aria-expanded", "true");
    if (focus) focus.focus();
  }

  const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
  // The settings' extra headers as an object, or the first line that is not `Name: value`.
  function extraHeaders() {
    const out = {};
    const lines = ui.headers.value.split(/\r\n|\r|\n/);
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (!line) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? "" : line.slice(0, colon).trim();
      const value = colon < 0 ? "" : line.slice(colon + 1).trim();
      if (!TOKEN.test(name) || /[\0\r\n]/.test(value)) {
        return { headers: {}, error: `Request headers, line ${i + 1}: "${line.slice(0, 60)}" is not "Name: value".` };
      }
      if (name.toLowerCase() === "content-type") {
        return { headers: {}, error: `Request headers, line ${i + 1}: Content-Type is always application/json.` };
      }
      out[name] = value;
    }
    return { headers: out, error: "" };
  }

  function headers(json) {
    const out = json ? { "content-type": "application/json" } : {};
    Object.assign(out, extraHeaders().headers);
    const key = apiKey();
    if (key) out.authorization = `Bearer ${key}`;
    return out;
  }

  // ---- Markdown, rendered to DOM nodes ---------------------------------------------------
  // Headings, paragraphs (a line end is a line break), emphasis, strikethrough, inline code,
  // fenced code blocks with a copy button, lists, quotes, rules, tables, links. Anything
  // else, raw HTML included, is text. Links go only to http(s) addresses; images are never
  // loaded (they become links).

  const MAX_DEPTH = 12;
  const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$/;
  const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
  const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
  const QUOTE = /^ {0,3}> ?(.*)$/;
  const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])([ \t]+(.*))?$/;
  const TABLE_RULE = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
  const WEB = /^https?:\/\/[^\s]+$/i;

  function startsBlock(line) {
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line)
      || /^ {0,3}([-*+]|\d{1,9}[.)])[ \t]+\S/.test(line);
  }

  function cells(line) {
    let text = line.trim();
    if (text.startsWith("|")) text = text.slice(1);
    if (text.endsWith("|") && !text.endsWith("\\|")) text = text.slice(0, -1);
    return text.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
  }

  function markdown(text, parent, depth = 0) {
    const lines = text.split(/\r\n|\r|\n/);
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (!line.trim()) { i++; continue; }
      if (depth >= MAX_DEPTH) { // deeper nesting is shown as it was written
        parent.append(el("p", "", lines.slice(i).join("\n")));
        return;
      }
      if ((m = FENCE.exec(line))) {
        const fence = m[1];
        const body = [];
        i++;
        while (i < lines.length) {
          const close = lines[i].trim();
          if (close[0] === fence[0] && close.length >= fence.length && /^(`+|~+)$/.test(close)) { i++; break; }
          body.push(lines[i]);
          i++;
        }
        parent.append(codeBlock(body.join("\n"), m[2]));
      } else if ((m = HEADING.exec(line))) {
        const heading = el(`h${m[1].length}`);
        inline(m[2] || "", heading);
        parent.append(heading);
        i++;
      } else if (RULE.test(line)) {
        parent.append(el("hr"));
        i++;
      } else if (QUOTE.test(line)) {
        const body = [];
        while (i < lines.length && (m = QUOTE.exec(lines[i]))) { body.push(m[1]); i++; }
        const quote = el("blockquote");
        markdown(body.join("\n"), quote, depth + 1);
        parent.append(quote);
      } else if ((m = ITEM.exec(line)) && (m[4] || "").trim() !== "" || (m && i + 1 < lines.length && /^\s+\S/.test(lines[i + 1]))) {
        i = list(lines, i, parent, depth);
      } else if (line.includes("|") && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1]) && lines[i + 1].includes("|")) {
        i = table(lines, i, parent);
      } else {
        const body = [line];
        i++;
        while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) { body.push(lines[i]); i++; }
        const paragraph = el("p");
        inline(body.map((l) => l.trim()).join("\n"), paragraph);
        parent.append(paragraph);
      }
    }
  }

  function list(lines, i, parent, depth) {
    const first = ITEM.exec(lines[i]);
    const ordered = /\d/.test(first[2]);
    const node = el(ordered ? "ol" : "ul");
    if (ordered && parseInt(first[2], 10) !== 1) node.start = parseInt(first[2], 10);
    let item = null;
    let indent = 0;
    let blank = false;
    const flush = () => {
      if (!item) return;
      const li = el("li");
      markdown(item.join("\n"), li, depth + 1);
      node.append(li);
    };
    while (i < lines.length) {
      const line = lines[i];
      const m = ITEM.exec(line);
      const inside = item !== null && line.length - line.trimStart().length >= indent;
      if (m && !inside && /\d/.test(m[2]) === ordered) {
        flush();
        const gap = m[3] ? m[3].length - (m[4] || "").length : 1;
        indent = m[1].length + m[2].length + (gap > 4 ? 1 : gap);
        item = [m[4] || ""];
        blank = false;
      } else if (!line.trim()) {
        blank = true;
        item.push("");
      } else if (inside) {
        item.push(line.slice(indent));
        blank = false;
      } else if (!blank && !startsBlock(line)) {
        item.push(line.trim()); // a paragraph's lazy continuation
      } else break;
      i++;
    }
    flush();
    parent.append(node);
    return i;
  }

  function table(lines, i, parent) {
    const head = cells(lines[i]);
    const aligns = cells(lines[i + 1]).map((c) =>
      (c.endsWith(":") ? (c.startsWith(":") ? "center" : "right") : c.startsWith(":") ? "left" : ""));
    const node = el("table");
    const row = (texts, tag) => {
      const tr = el("tr");
      head.forEach((_, j) => {
        const cell = el(tag);
        if (aligns[j]) cell.className = `align-${aligns[j]}`;
        inline(texts[j] || "", cell);
        tr.append(cell);
      });
      return tr;
    };
    const thead = el("thead");
    thead.append(row(head, "th"));
    const tbody = el("tbody");
    i += 2;
    while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
      tbody.append(row(cells(lines[i]), "td"));
      i++;
    }
    node.append(thead, tbody);
    const wrap = el("div", "table-wrap");
    wrap.append(node);
    parent.append(wrap);
    return i;
  }

  function link(label, url, parent, labelIsText) {
    let node;
    if (WEB.test(url)) {
      node = el("a");
      node.href = url;
      node.rel = "noopener noreferrer nofollow";
      node.target = "_blank";
    } else {
      node = el("span", "link-disabled");
      node.title = `Not followed: only http(s) links are (${url.slice(0, 100)})`;
    }
    if (labelIsText) node.textContent = label;
    else inline(label, node, true);
    parent.append(node);
  }

  const PUNCT = /[!-/:-@[-`{-~]/;
  const REACH = 2000; // how far a delimiter's closer is looked for: no quadratic time
  const WORD = /[\p{L}\p{N}]/u;

  // The closing delimiter of an emphasis run starting at `from`, or -1.
  function closer(s, delim, from) {
    let at = from;
    while ((at = s.indexOf(delim, at)) >= 0 && at < from + REACH) {
      const before = s[at - 1];
      const after = s[at + delim.length];
      const ok = at > from && !/\s/.test(before)
        && (delim[0] !== "_" || !after || !WORD.test(after))
        && (delim.length > 1 || s[at + 1] !== delim); // a single * is not half of **
      if (ok) return at;
      at += delim.length;
    }
    return -1;
  }

  function inline(s, parent, inLink = false) {
    let text = "";
    const flush = () => { if (text) { parent.append(document.createTextNode(text)); text = ""; } };
    let i = 0;
    while (i < s.length) {
      const c = s[i];
      if (c === "\\" && i + 1 < s.length && PUNCT.test(s[i + 1])) { text += s[i + 1]; i += 2; continue; }
      if (c === "\n") { flush(); parent.append(el("br")); i++; continue; }
      if (c === "`") {
        let run = 1;
        while (s[i + run] === "`") run++;
        const fence = "`".repeat(run);
        const near = s.slice(0, i + REACH);
        let end = near.indexOf(fence, i + run);
        while (end >= 0 && s[end + run] === "`") end = near.indexOf(fence, end + run + 1);
        if (end >= 0) {
          let code = s.slice(i + run, end).replace(/\n/g, " ");
          if (code.length > 2 && code[0] === " " && code[code.length - 1] === " ") code = code.slice(1, -1);
          flush();
          parent.append(el("code", "", code));
          i = end + run;
          continue;
        }
        text += fence; i += run; continue;
      }
      if (c === "*" || c === "_" || c === "~") {
        let run = 1;
        while (s[i + run] === c) run++;
        const opens = i + run < s.length && !/\s/.test(s[i + run])
          && !(c === "_" && i > 0 && WORD.test(s[i - 1]));
        const sizes = !opens ? [] : c === "~" ? (run === 2 ? [2] : []) : run <= 3 ? [run] : [];
        let done = false;
        for (const size of sizes) {
          const delim = c.repeat(size);
          const end = closer(s, delim, i + size);
          if (end < 0) continue;
          flush();
          const inner = s.slice(i + size, end);
          const tag = c === "~" ? "del" : size === 1 ? "em" : "strong";
          const node = el(tag);
          if (size === 3) {
            const em = el("em");
            inline(inner, em, inLink);
            node.append(em);
          } else inline(inner, node, inLink);
          parent.append(node);
          i = end + size;
          done = true;
          break;
        }
        if (!done) { text += s.slice(i, i + run); i += run; }
        continue;
      }
      if (!inLink && (c === "[" || (c === "!" && s[i + 1] === "["))) {
        const open = c === "!" ? i + 1 : i;
        let depth = 0;
        let close = -1;
        for (let j = open; j < s.length && j < open + REACH; j++) {
          if (s[j] === "\\") { j++; continue; }
          if (s[j] === "[") depth++;
          else if (s[j] === "]" && --depth === 0) { close = j; break; }
        }
        const target = close >= 0 && s[close + 1] === "("
          ? /^\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+("[^"]*"|'[^']*'))?\s*\)/.exec(s.slice(close + 1))
          : null;
        if (target) {
          flush();
          const url = target[1].replace(/^<|>$/g, "");
          const label = s.slice(open + 1, close);
          if (c === "!") link(label || url, url, parent, true); // an image: never loaded
          else link(label, url, parent, false);
          i = close + 1 + target[0].length;
          continue;
        }
      }
      if (!inLink && c === "<") {
        const m = /^<(https?:\/\/[^\s<>]+)>/i.exec(s.slice(i));
        if (m) { flush(); link(m[1], m[1], parent, true); i += m[0].length; continue; }
      }
      if (!inLink && (c === "h" || c === "H") && (i === 0 || !WORD.test(s[i - 1]))) {
        const m = /^https?:\/\/[^\s<>]+/i.exec(s.slice(i, i + 2048));
        if (m) {
          let url = m[0].replace(/[.,:;!?'"*_~]+$/, "");
          while (url.endsWith(")") && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) url = url.slice(0, -1);
          if (/^https?:\/\/./i.test(url)) { flush(); link(url, url, parent, true); i += url.length; continue; }
        }
      }
      text += c;
      i++;
    }
    flush();
  }

  function codeBlock(code, lang) {
    const box = el("div", "code");
    const head = el("div", "code-head");
    head.append(el("span", "code-lang", lang || "code"), copyButton(() => code, "Copy code"));
    const pre = el("pre");
    const inner = el("code", "", code);
    pre.append(inner);
    box.append(head, pre);
    return box;
  }

  // Copies text() to the clipboard; where the browser refuses, selects it to copy by hand.
  function copyButton(text, title, label = "Copy") {
    const node = button(label, "copy", async () => {
      const value = text();
      let done = false;
      try {
        if (navigator.clipboard) { await navigator.clipboard.writeText(value); done = true; }
      } catch (_) { /* refused: select instead */ }
      if (!done) {
        const target = node.closest(".code, .raw-part, .msg");
        const pre = target && target.querySelector("pre, .content");
        if (pre) window.getSelection().selectAllChildren(pre);
      }
      node.textContent = done ? "Copied" : "Selected: press Ctrl+C";
      setTimeout(() => { node.textContent = label; }, 1500);
    });
    node.title = title;
    return node;
  }

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

  // Reads the whole body, calling seen(event) for every event and onEvent(event) for each
  // before `data: [DONE]`; onEvent returns true to ignore the rest. The body is drained to
  // its end either way, so the server sees a completed stream, not a client that hung up.
  async function readEvents(response, seen, onEvent) {
    const reader = response.body.getReader();
    const utf8 = new TextDecoder();
    const lines = new LineSplitter();
    const sse = new SSEDecoder();
    let finished = false;
    const take = (batch) => {
      for (const line of batch) {
        const event = sse.decode(line);
        if (!event) continue;
        seen(event);
        if (finished) continue;
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

  // ---- the conversation as each API wants it ---------------------------------------------

  const counts = (t) => !t.excluded;

  function chatMessages(turns) {
    const out = [];
    for (const t of turns.filter(counts)) {
      if (t.kind === "user") out.push({ role: "user", content: t.text });
      else if (t.kind === "tool") out.push({ role: "tool", tool_call_id: t.callId, content: t.output });
      else if (t.kind === "assistant" && (t.text || (t.calls && t.calls.length))) {
        const message = { role: "assistant", content: t.text || null };
        if (t.calls && t.calls.length) {
          message.tool_calls = t.calls.map((c) => ({
            id: c.id, type: "function", function: { name: c.name, arguments: c.args },
          }));
        }
        out.push(message);
      }
    }
    return out;
  }

  function responsesItems(turns) {
    const out = [];
    for (const t of turns.filter(counts)) {
      if (t.kind === "user") out.push({ role: "user", content: t.text });
      else if (t.kind === "tool") out.push({ type: "function_call_output", call_id: t.callId, output: t.output });
      else if (t.kind === "assistant") {
        if (t.text) out.push({ role: "assistant", content: t.text });
        for (const c of t.calls || []) {
          out.push({ type: "function_call", call_id: c.id, name: c.name, arguments: c.args });
        }
      }
    }
    return out;
  }

  function number(input, integer) {
    const text = input.value.trim();
    if (!text) return undefined;
    const value = Number(text);
    return Number.isFinite(value) ? (integer ? Math.trunc(value) : value) : undefined;
  }

  // The request for the next answer: its path and body, from the turns so far.
  function buildRequest(agent, turns) {
    const system = ui.system.value.trim() ? ui.system.value : "";
    const temperature = number(ui.temperature, false);
    const maxTokens = number(ui.maxTokens, true);
    const name = encodeURIComponent(agent);
    if (ui.api.value === "responses") {
      const body = { model: agent };
      const store = ui.store.checked;
      let from = 0;
      if (store) { // continue the last stored answer: send only what came after it
        for (let i = turns.length - 1; i >= 0; i--) {
          const t = turns[i];
          if (t.kind === "assistant" && !t.excluded && t.responseId && t.stored) {
            body.previous_response_id = t.responseId;
            from = i + 1;
            break;
          }
        }
      }
      if (system) body.instructions = system;
      body.input = responsesItems(turns.slice(from));
      if (temperature !== undefined) body.temperature = temperature;
      if (maxTokens !== undefined) body.max_output_tokens = maxTokens;
      body.store = store;
      body.stream = true;
      return { api: "responses", path: `/${name}/responses`, body };
    }
    const messages = chatMessages(turns);
    if (system) messages.unshift({ role: "system", content: system });
    const body = { model: agent, messages };
    if (temperature !== undefined) body.temperature = temperature;
    if (maxTokens !== undefined) body.max_tokens = maxTokens;
    body.stream = true;
    body.stream_options = { include_usage: true };
    return { api: "chat", path: `/${name}/chat/completions`, body };
  }

  // ---- the conversation view -------------------------------------------------------------

  function scrollDown() { ui.log.scrollTop = ui.log.scrollHeight; }

  function renderAll() {
    ui.log.replaceChildren(ui.empty);
    ui.empty.hidden = conversation.turns.length > 0;
    for (const turn of conversation.turns) ui.log.append(render(turn).article);
    refreshActions();
    scrollDown();
  }

  function render(turn) {
    const view = turn.kind === "assistant" ? new AnswerView(turn) : plainView(turn);
    views.set(turn, view);
    return view;
  }

  function plainView(turn) {
    const article = el("article", `msg ${turn.kind}`);
    if (turn.excluded) article.classList.add("excluded");
    if (turn.kind === "user") {
      article.append(el("div", "role", "you"), el("div", "content", turn.text));
    } else { // a tool result
      article.append(el("div", "role", `tool result: ${turn.name || turn.callId}`));
      const pre = el("pre", "tool-output", turn.output);
      article.append(pre);
    }
    return { article };
  }

  function append(turn) {
    conversation.turns.push(turn);
    ui.empty.hidden = true;
    const view = render(turn);
    ui.log.append(view.article);
    return view;
  }

  // The last answer, when its tool calls are still waiting for results (failed requests
  // after it do not count).
  function pendingCalls() {
    const live = conversation.turns.filter(counts);
    const last = live[live.length - 1];
    return last && last.kind === "assistant" && last.calls && last.calls.length
      && !last.streaming ? last : null;
  }

  // Shows tool-result boxes, "Send results" and "Regenerate" only where they apply.
  function refreshActions() {
    const pending = pendingCalls();
    const turns = conversation.turns;
    const last = turns[turns.length - 1];
    for (const turn of turns) {
      const view = views.get(turn);
      if (!view || turn.kind !== "assistant") continue;
      view.setPending(turn === pending);
      view.regenerate.hidden = !(turn === last && !turn.excluded && !turn.streaming && !controller);
    }
  }

  // One assistant answer: its Markdown text, tool calls, error, facts and raw exchange.
  class AnswerView {
    constructor(turn) {
      this.turn = turn;
      turn.calls = turn.calls || [];
      turn.facts = turn.facts || {};
      const article = el("article", "msg assistant");
      this.article = article;
      if (turn.excluded) article.classList.add("excluded");
      const head = el("div", "role", turn.agent);
      this.content = el("div", "content");
      this.callsBox = el("div", "calls");
      this.errorBox = el("div", "error");
      this.errorBox.setAttribute("role", "alert");
      this.hintBox = el("div", "hint");
      this.meta = el("div", "meta");
      this.facts = {};
      this.copy = copyButton(() => this.turn.text || "", "Copy the answer's Markdown");
      this.rawButton = button("Raw", "raw-toggle", () => this.toggleRaw());
      this.regenerate = button("Regenerate", "regenerate", () => regenerate(this.turn));
      this.regenerate.hidden = true;
      const actions = el("div", "actions");
      actions.append(this.copy, this.rawButton, this.regenerate);
      this.rawBox = el("div", "raw");
      this.rawBox.hidden = true;
      article.append(head, this.content, this.callsBox, this.errorBox, this.hintBox, this.meta, actions, this.rawBox);
      this.callViews = [];
      this.scheduled = false;
      this.pending = false;
      this.update(true);
    }
    // Renders what changed; the text at most once a frame while it streams.
    update(now) {
      const turn = this.turn;
      this.article.classList.toggle("streaming", !!turn.streaming);
      if (now) this.paint();
      else if (!this.scheduled) {
        this.scheduled = true;
        requestAnimationFrame(() => { this.scheduled = false; this.paint(); });
      }
    }
    paint() {
      const turn = this.turn;
      if (this.shownText !== turn.text) {
        this.shownText = turn.text;
        const fresh = document.createDocumentFragment();
        markdown(turn.text || "", fresh);
        this.content.replaceChildren(fresh);
      }
      turn.calls.forEach((call, index) => {
        let view = this.callViews[index];
        if (!view) {
          view = { box: el("div", "tool"), name: el("div", "tool-name"), args: el("pre", "tool-args") };
          view.result = el("textarea", "tool-result");
          view.result.rows = 2;
          view.result.placeholder = "The tool's result, sent back to the agent";
          view.result.setAttribute("aria-label", "Result of this tool call");
          view.box.append(view.name, view.args, view.result);
          this.callsBox.append(view.box);
          this.callViews[index] = view;
        }
        view.name.textContent = call.name;
        let args = call.args;
        if (!turn.streaming) { try { args = JSON.stringify(JSON.parse(args), null, 2); } catch (_) { /* as sent */ } }
        view.args.textContent = args;
        view.result.hidden = !this.pending;
      });
      if (this.pending && !this.sendResults) {
        this.sendResults = button("Send results", "send-results", () => send({ results: true }));
        this.callsBox.append(this.sendResults);
      }
      if (this.sendResults) this.sendResults.hidden = !this.pending;
      this.errorBox.textContent = turn.error || "";
      this.errorBox.hidden = !turn.error;
      this.hintBox.textContent = turn.hint || "";
      this.hintBox.hidden = !turn.hint;
      for (const [name, value] of Object.entries(turn.facts)) {
        let item = this.facts[name];
        if (!item) {
          item = el("span", `fact-${name}`);
          this.facts[name] = item;
          this.meta.append(item);
        }
        item.textContent = value;
      }
      this.rawButton.hidden = !turn.raw;
      if (!this.rawBox.hidden) this.fillRaw();
    }
    setPending(on) {
      if (this.pending === on) return;
      this.pending = on;
      this.paint();
    }
    results() { return this.callViews.map((v) => v.result); }
    toggleRaw() {
      this.rawBox.hidden = !this.rawBox.hidden;
      this.rawButton.setAttribute("aria-expanded", String(!this.rawBox.hidden));
      if (!this.rawBox.hidden) this.fillRaw();
    }
    fillRaw() {
      const raw = this.turn.raw;
      if (!raw) return;
      const part = (title, text) => {
        const box = el("section", "raw-part");
        const head = el("div", "raw-head");
        head.append(el("span", "", title), copyButton(() => text, `Copy the ${title.toLowerCase()}`));
        box.append(head, el("pre", "", text));
        return box;
      };
      this.rawBox.replaceChildren(part("Request", rawRequest(raw.request)), part("Response", rawResponse(raw.response)));
    }
  }

  function rawRequest(request) {
    const lines = [`${request.method} ${request.url}`];
    for (const [name, value] of Object.entries(request.headers || {})) {
      lines.push(`${name}: ${value}`);
    }
    return `${lines.join("\n")}\n\n${JSON.stringify(request.body, null, 2)}`;
  }

  function rawResponse(response) {
    if (!response) return "(no response)";
    const lines = [`HTTP ${response.status}${response.type ? `  ${response.type}` : ""}`];
    if (response.requestId) lines.push(`x-request-id: ${response.requestId}`);
    lines.push("");
    if (response.events) {
      for (const e of response.events) {
        lines.push(`+${e.t} ms${e.event ? `  event: ${e.event}` : ""}`);
        let data = e.data;
        try { data = JSON.stringify(JSON.parse(data)); } catch (_) { /* as it came */ }
        lines.push(`data: ${data}`, "");
      }
      if (response.end !== undefined) lines.push(`+${response.end} ms  end of stream`);
    } else if (response.body !== undefined) {
      let body = response.body;
      try { body = JSON.stringify(JSON.parse(body), null, 2); } catch (_) { /* not JSON */ }
      lines.push(body);
    }
    if (response.note) lines.push(response.note);
    return lines.join("\n");
  }

  // ---- one answer's stream, per API ------------------------------------------------------

  function usageFact(turn, usage, inName, outName) {
    const n = (v) => (Number.isFinite(v) ? v : "?");
    turn.facts.usage = `tokens ${n(usage[inName])} in, ${n(usage[outName])} out, ${n(usage.total_tokens)} total`;
  }

  function errorMessage(data, fallback) {
    const error = data && (data.error || (data.response && data.response.error) || data);
    const message = error && error.message;
    return typeof message === "string" && message ? message : fallback;
  }

  // Chat Completions: a chunk (stream) or the chat.completion (JSON). Returns true to stop.
  function chatData(turn, data, json) {
    if (data && data.error) { turn.error = errorMessage(data, "An error occurred during streaming"); return true; }
    if (data.usage) usageFact(turn, data.usage, "prompt_tokens", "completion_tokens");
    for (const choice of Array.isArray(data.choices) ? data.choices : []) {
      if (choice.index) continue; // the page shows the first choice
      const message = (json ? choice.message : choice.delta) || {};
      if (typeof message.content === "string") turn.text += message.content;
      if (typeof message.refusal === "string") turn.text += message.refusal;
      (Array.isArray(message.tool_calls) ? message.tool_calls : []).forEach((delta, k) => {
        const index = Number.isInteger(delta.index) ? delta.index : json ? k : turn.calls.length;
        const call = turn.calls[index] || (turn.calls[index] = { id: "", name: "", args: "" });
        const fn = delta.function || {};
        if (typeof delta.id === "string") call.id = delta.id;
        if (typeof fn.name === "string") call.name += fn.name;
        if (typeof fn.arguments === "string") call.args += fn.arguments;
      });
      if (choice.finish_reason) turn.facts.finish = `finish ${choice.finish_reason}`;
    }
    return false;
  }

  function responseObject(turn, response) {
    if (!response || typeof response !== "object") return;
    if (typeof response.id === "string") {
      turn.responseId = response.id;
      turn.facts["response-id"] = `response id ${response.id}`;
    }
    turn.stored = response.store === true;
    if (response.usage) usageFact(turn, response.usage, "input_tokens", "output_tokens");
    if (response.status && response.status !== "in_progress" && response.status !== "queued") {
      const why = response.incomplete_details && response.incomplete_details.reason;
      turn.facts.finish = `status ${response.status}${why ? ` (${why})` : ""}`;
    }
  }

  function responseItem(turn, index, item) {
    if (!item || item.type !== "function_call") return;
    turn.callAt = turn.callAt || {};
    let call = turn.callAt[index];
    if (!call) { call = { id: "", name: "", args: "" }; turn.callAt[index] = call; turn.calls.push(call); }
    if (typeof item.call_id === "string") call.id = item.call_id;
    if (typeof item.name === "string") call.name = item.name;
    if (typeof item.arguments === "string" && item.arguments) call.args = item.arguments;
  }

  // Responses: one semantic event (stream) or the response object (JSON). True to stop.
  function responsesData(turn, data, json) {
    if (json) {
      responseObject(turn, data);
      (data.output || []).forEach((item, index) => {
        if (item.type === "message") {
          for (const part of item.content || []) {
            if (typeof part.text === "string") turn.text += part.text;
            if (typeof part.refusal === "string") turn.text += part.refusal;
          }
        } else responseItem(turn, index, item);
      });
      if (data.status === "failed") turn.error = errorMessage(data.error ? data : null, "The response failed.");
      return false;
    }
    switch (data && data.type) {
      case "response.created": case "response.in_progress":
        responseObject(turn, data.response); return false;
      case "response.output_text.delta": case "response.refusal.delta":
        if (typeof data.delta === "string") turn.text += data.delta; return false;
      case "response.output_item.added": case "response.output_item.done":
        responseItem(turn, data.output_index, data.item); return false;
      case "response.function_call_arguments.delta": {
        const call = turn.callAt && turn.callAt[data.output_index];
        if (call && typeof data.delta === "string") call.args += data.delta;
        return false;
      }
      case "response.completed": case "response.incomplete":
        responseObject(turn, data.response); return false;
      case "response.failed":
        responseObject(turn, data.response);
        turn.error = errorMessage(data, "The response failed.");
        return true;
      case "error":
        turn.error = errorMessage(data, "An error occurred during streaming");
        return true;
      default:
        return false;
    }
  }

  // ---- talking to the server -------------------------------------------------------------

  function agentName() {
    return (ui.other.value.trim() || ui.agent.value || "").trim();
  }

  async function errorOf(response) {
    let message = response.statusText || "";
    let code = null;
    let body = "";
    try {
      body = await response.text();
      const data = JSON.parse(body);
      if (data && data.error && typeof data.error.message === "string") {
        message = data.error.message;
        code = data.error.code || null;
      } else if (data && typeof data.detail === "string") message = data.detail;
    } catch (_) { /* not JSON */ }
    return { text: `Error ${response.status}: ${message}`, code, body };
  }

  // What a refusal means here, and where to mend it: the key field only on a server with keys.
  function explainRefusal(turn, status, code) {
    if (code === "missing_api_key" && config.keys) {
      turn.hint = "This server wants an API key: enter it in the API key field above.";
      ui.keyRow.hidden = false;
      return ui.key;
    }
    if (code === "invalid_api_key" && config.keys) {
      turn.hint = "The server does not know this API key: check the API key field above.";
      ui.keyRow.hidden = false;
      return ui.key;
    }
    const who = config.keys
      ? "Not an API key problem: the server's own checks (a before_request hook) refused the request."
      : "This server has no API keys: its own checks (a before_request hook) refused the request.";
    turn.hint = `${who} If it wants a header (such as X-User), add it under Settings, Request headers.`;
    openSettings();
    return ui.headers;
  }

  function busy(on) {
    ui.send.disabled = on;
    ui.stop.disabled = !on;
    ui.agent.disabled = on;
    ui.other.disabled = on;
    ui.newChat.disabled = false;
  }

  // Sends the composer's message (and the results of pending tool calls), or with
  // {results: true} the tool results alone.
  async function send(options = {}) {
    if (controller) return;
    const agent = agentName();
    if (!agent) { ui.agent.focus(); return; }
    if (agent !== conversation.agent) loadConversation(agent);
    const text = ui.input.value;
    const pending = pendingCalls();
    if (!pending && !text.trim()) return;
    if (!pending && options.results) return;
    const { error } = extraHeaders();
    if (error) { showSettingsState(); openSettings(ui.headers); return; }
    const added = [];
    if (pending) { // every call answered first, as the APIs want
      const view = views.get(pending);
      const boxes = view.results();
      const empty = boxes.find((box) => !box.value.trim());
      if (empty) {
        pending.hint = "Answer each tool call first: its result goes back to the agent before your message.";
        view.paint();
        empty.focus();
        return;
      }
      pending.hint = "";
      view.paint();
      pending.calls.forEach((call, k) => {
        added.push({ kind: "tool", callId: call.id, name: call.name, output: boxes[k].value });
      });
    }
    if (text.trim()) {
      ui.input.value = "";
      added.push({ kind: "user", text });
    }
    added.forEach(append);
    await run(agent, text, added);
  }

  function regenerate(turn) {
    const turns = conversation.turns;
    if (controller || turns[turns.length - 1] !== turn) return;
    turns.pop();
    turn.excluded = true; // in case the view is kept around
    renderAll();
    run(conversation.agent, "", []);
  }

  // Asks for the next answer to the conversation as it stands.
  // `added` are the turns this request sends first: taken back if it is refused.
  async function run(agent, text, added) {
    const request = buildRequest(agent, conversation.turns);
    const started = performance.now();
    const since = () => Math.round(performance.now() - started);
    const sent = headers(true);
    const shown = {}; // what the raw view keeps: no key or token, which could reach storage
    for (const [name, value] of Object.entries(sent)) {
      shown[name] = /authorization|cookie|key|token|secret/i.test(name) ? "***" : value;
    }
    const turn = {
      kind: "assistant", agent, api: request.api, text: "", calls: [], facts: {}, streaming: true,
      raw: { request: { method: "POST", url: `${base}${request.path}`, headers: shown, body: request.body } },
    };
    const view = append(turn);
    controller = new AbortController();
    busy(true);
    saveConversation();
    refreshActions();
    scrollDown();
    let focus = ui.input;
    const handle = request.api === "responses" ? responsesData : chatData;
    const raw = { status: 0 };
    turn.raw.response = raw;
    let firstToken = false;
    const got = () => {
      if (!firstToken && (turn.text || turn.calls.length)) {
        firstToken = true;
        turn.facts.ttft = `first token ${since()} ms`;
      }
      view.update(false);
    };
    try {
      const response = await fetch(`${base}${request.path}`, {
        method: "POST", headers: sent, body: JSON.stringify(request.body), signal: controller.signal,
      });
      raw.status = response.status;
      raw.type = response.headers.get("content-type") || "";
      raw.requestId = response.headers.get("x-request-id") || "";
      if (raw.requestId) turn.facts["request-id"] = `request id ${raw.requestId}`;
      if (!response.ok) {
        const error = await errorOf(response);
        raw.body = error.body;
        turn.error = error.text;
        if (response.status === 401 || response.status === 403) focus = explainRefusal(turn, response.status, error.code);
        // Not part of the conversation; what led to it is taken back, to send again.
        turn.excluded = true;
        view.article.classList.add("excluded");
        for (const t of added) {
          conversation.turns.splice(conversation.turns.indexOf(t), 1);
          views.get(t).article.remove();
        }
        if (text && !ui.input.value) ui.input.value = text;
        return;
      }
      if (raw.type.includes("text/event-stream")) {
        raw.events = [];
        await readEvents(
          response,
          (event) => raw.events.push({ t: since(), event: event.event, data: event.data }),
          (event) => {
            let data;
            try { data = JSON.parse(event.data); } catch (_) {
              turn.error = `The stream sent data that is not JSON: ${event.data.slice(0, 200)}`;
              return true;
            }
            const stop = handle(turn, data, false);
            got();
            return stop;
          },
        );
        raw.end = since();
      } else {
        raw.body = await response.text();
        handle(turn, JSON.parse(raw.body), true);
        got();
      }
    } catch (err) {
      if (err && err.name === "AbortError") turn.facts.note = "stopped";
      else turn.error = `Network error: ${err && err.message ? err.message : err}`;
      raw.note = turn.facts.note || turn.error;
    } finally {
      delete turn.streaming;
      delete turn.callAt;
      turn.calls = turn.calls.filter(Boolean);
      turn.facts.total = `total ${since()} ms`;
      controller = null;
      busy(false);
      view.update(true);
      saveConversation();
      refreshActions();
      scrollDown();
      if (pendingCalls() === turn) {
        const box = view.results()[0];
        if (box) focus = box;
      }
      focus.focus();
    }
  }

  // ---- the server's agents ---------------------------------------------------------------

  function addAgent(name) {
    const option = el("option", "", name);
    option.value = name;
    ui.agent.append(option);
  }

  function setAgents(names) {
    const current = ui.agent.value || config.agent || load(localStorage, AGENT_STORE, null);
    ui.agent.replaceChildren();
    const unique = [...new Set(names)];
    if (config.agent && !unique.includes(config.agent)) unique.unshift(config.agent);
    unique.forEach(addAgent);
    if (current && unique.includes(current)) ui.agent.value = current;
    if (!controller && agentName() !== conversation.agent) loadConversation(agentName());
  }

  // With keys the page comes knowing nothing of the server: it asks, with the key.
  let serverKnown = !config.keys;
  async function loadServer() {
    if (serverKnown) return;
    if (!apiKey()) {
      ui.empty.textContent = "This server wants an API key: enter it above to see its agents.";
      return;
    }
    try {
      const response = await fetch(`${base}${config.info}`, { headers: headers(false) });
      if (!response.ok) { ui.empty.textContent = (await errorOf(response)).text; return; }
      const info = await response.json();
      if (serverKnown) return;
      serverKnown = true;
      config.title = info.title; config.dynamic = info.dynamic; config.models = info.models;
      ui.empty.textContent = EMPTY_TEXT;
      describeServer(info.agents || []);
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
    conversation.turns = [];
    saveConversation();
    renderAll();
    ui.input.focus();
  }

  // ---- wiring ----------------------------------------------------------------------------

  let keyTimer = 0;
  readSettings();
  if (serverKnown) describeServer(config.agents || []);
  else setAgents([]);
  try { ui.key.value = sessionStorage.getItem(KEY_STORE) || ""; } catch (_) { /* storage off */ }
  ui.keyRow.hidden = !config.keys;
  ui.keyRow.addEventListener("submit", (event) => { event.preventDefault(); ui.input.focus(); });
  ui.key.addEventListener("input", () => {
    try { sessionStorage.setItem(KEY_STORE, ui.key.value.trim()); } catch (_) { /* storage off */ }
    clearTimeout(keyTimer);
    keyTimer = setTimeout(loadServer, 250);
  });
  ui.settingsToggle.addEventListener("click", () => {
    if (ui.settings.hidden) openSettings(ui.api);
    else { ui.settings.hidden = true; ui.settingsToggle.setAttribute("aria-expanded", "false"); }
  });
  ui.settings.addEventListener("input", writeSettings);
  ui.settings.addEventListener("change", writeSettings);
  ui.settings.addEventListener("submit", (event) => event.preventDefault());
  ui.agent.addEventListener("change", () => { ui.other.value = ""; loadConversation(agentName()); });
  ui.other.addEventListener("change", () => loadConversation(agentName()));
  ui.newChat.addEventListener("click", newChat);
  ui.stop.addEventListener("click", () => { if (controller) controller.abort(); });
  ui.form.addEventListener("submit", (event) => { event.preventDefault(); send(); });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  if (agentName() !== conversation.agent) loadConversation(agentName());
  loadServer();
  refreshAgents();
  ui.input.focus();
})();
