// The sandbox web chat: pick a demo person, chat with the real bot as them. No build step.
"use strict";

const POLL_MS = 700;
const state = {
  lang: "vi",
  people: [],
  current: null,
  rendered: {},   // user id -> JSON of the history last drawn
  seen: {},       // user id -> bot messages already looked at
  counts: {},     // user id -> bot messages now
  shownAnswers: new Set(),
  polling: false,
};

const $ = (id) => document.getElementById(id);
const t = (key, values) => {
  const words = (window.I18N[state.lang] || window.I18N.vi);
  let text = key.split(".").reduce((table, part) => (table ? table[part] : undefined), words) || key;
  for (const [name, value] of Object.entries(values || {})) text = text.replace(`{${name}}`, value);
  return text;
};

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = {};
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const error = new Error(data.error || String(response.status));
    error.status = response.status;
    error.data = data;
    throw error;
  }
  return data;
}

// ---------------------------------------------------------------- Telegram HTML, sanitised

const TAGS = {
  b: "b", strong: "b", i: "i", em: "i", u: "u", ins: "u", s: "s", strike: "s", del: "s",
  code: "code", pre: "pre", a: "a", blockquote: "blockquote", "tg-spoiler": "span", span: "span",
};

function copySafe(source, target) {
  for (const node of source.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) {
      target.append(document.createTextNode(node.data));
    } else if (node.nodeType === Node.ELEMENT_NODE) {
      const tag = node.tagName.toLowerCase();
      if (tag === "script" || tag === "style") continue;
      const safeTag = TAGS[tag];
      if (!safeTag) { copySafe(node, target); continue; }
      const element = document.createElement(safeTag);
      if (tag === "a") {
        const href = node.getAttribute("href") || "";
        if (/^(https?:|tg:|mailto:)/i.test(href)) {
          element.href = href;
          element.target = "_blank";
          element.rel = "noopener noreferrer";
        }
      }
      if (tag === "tg-spoiler" || (tag === "span" && node.classList.contains("tg-spoiler"))) element.className = "spoiler";
      copySafe(node, element);
      target.append(element);
    }
  }
}

function formatted(text, parseMode) {
  const box = document.createElement("div");
  box.className = "text";
  if ((parseMode || "").toLowerCase() === "html") {
    const doc = new DOMParser().parseFromString(`<body>${text}</body>`, "text/html");
    copySafe(doc.body, box);
  } else {
    box.textContent = text;
  }
  return box;
}

// ---------------------------------------------------------------- drawing

function timeOf(seconds) {
  const date = new Date(seconds * 1000);
  return date.toLocaleTimeString(state.lang === "vi" ? "vi-VN" : "en-GB", { hour: "2-digit", minute: "2-digit" });
}

function bubble(entry) {
  const message = entry.message;
  const mine = entry.from === "user";
  const row = document.createElement("div");
  row.className = `msg ${mine ? "user" : "bot"}`;
  row.dataset.messageId = message.message_id;
  const box = document.createElement("div");
  box.className = "bubble";

  if (Array.isArray(message.photo) && message.photo.length) {
    const biggest = message.photo[message.photo.length - 1];
    const img = document.createElement("img");
    img.className = "photo";
    img.alt = "";
    img.src = `/api/file/${encodeURIComponent(biggest.file_id)}?inline=1`;
    box.append(img);
  }
  if (message.document) {
    const link = document.createElement("a");
    link.className = "document";
    link.href = `/api/file/${encodeURIComponent(message.document.file_id)}`;
    link.download = message.document.file_name || "file";
    const size = message.document.file_size ? ` · ${Math.max(1, Math.round(message.document.file_size / 1024))} KB` : "";
    link.innerHTML = '<span class="doc-icon" aria-hidden="true">📄</span>';
    const name = document.createElement("span");
    name.className = "doc-name";
    name.textContent = `${message.document.file_name || "file"}${size}`;
    const hint = document.createElement("span");
    hint.className = "doc-hint";
    hint.textContent = t("download");
    link.append(name, hint);
    box.append(link);
  }
  const text = message.text ?? message.caption;
  if (text) box.append(formatted(text, message.parse_mode));

  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = (message.edit_date ? `${t("edited")} · ` : "") + timeOf(message.edit_date || message.date);
  box.append(meta);
  row.append(box);

  const keyboard = (message.reply_markup || {}).inline_keyboard;
  if (!mine && Array.isArray(keyboard) && keyboard.length) {
    const pad = document.createElement("div");
    pad.className = "keyboard";
    for (const buttons of keyboard) {
      const line = document.createElement("div");
      line.className = "kb-row";
      for (const button of buttons) {
        let control;
        if (button.url) {
          if (/^(https?:|tg:)/i.test(button.url)) {
            control = document.createElement("a");
            control.href = button.url;
            control.target = "_blank";
            control.rel = "noopener noreferrer";
          } else {  // javascript:, data: and the like never become links
            control = document.createElement("button");
            control.type = "button";
            control.disabled = true;
            control.title = button.url;
          }
        } else {
          control = document.createElement("button");
          control.type = "button";
          control.dataset.data = button.callback_data || "";
          control.addEventListener("click", () => tap(message.message_id, button.callback_data, control));
        }
        control.className = "kb";
        control.textContent = button.text;
        line.append(control);
      }
      pad.append(line);
    }
    row.append(pad);
  }
  return row;
}

function drawChat(history) {
  const list = $("messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.replaceChildren();
  if (!history.length) {
    const empty = document.createElement("div");
    empty.className = "empty";
    empty.textContent = t("emptyChat");
    list.append(empty);
  }
  for (const entry of history) list.append(bubble(entry));
  if (nearBottom || list.dataset.user !== String(state.current)) list.scrollTop = list.scrollHeight;
  list.dataset.user = String(state.current);
}

function drawPeople() {
  const list = $("people-list");
  list.replaceChildren();
  for (const person of state.people) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "person" + (person.id === state.current ? " on" : "");
    button.dataset.personId = person.id;
    const unread = Math.max(0, (state.counts[person.id] || 0) - (state.seen[person.id] || 0));
    button.innerHTML = '<span class="avatar" aria-hidden="true"></span><span class="who"><span class="name"></span>' +
      '<span class="role"></span></span>';
    const words = person.name.split(" ");
    const avatar = button.querySelector(".avatar");
    avatar.textContent = words[0].slice(0, 1) + words[words.length - 1].slice(0, 1);
    avatar.dataset.role = person.role;
    button.querySelector(".name").textContent = person.name;
    button.querySelector(".role").textContent = `${t(`roles.${person.role}`)} · ${person.unit}`;
    if (unread && person.id !== state.current) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = unread;
      button.append(badge);
    }
    button.addEventListener("click", () => choose(person.id));
    item.append(button);
    list.append(item);
  }
  const person = state.people.find((p) => p.id === state.current);
  $("chat-name").textContent = person ? person.name : "";
  $("chat-role").textContent = person ? `${t(`roles.${person.role}`)} · ${person.unit}` : "";
}

function drawWords() {
  document.documentElement.lang = state.lang;
  for (const element of document.querySelectorAll("[data-t]")) element.textContent = t(element.dataset.t);
  for (const element of document.querySelectorAll("[data-t-placeholder]")) element.placeholder = t(element.dataset.tPlaceholder);
  for (const button of document.querySelectorAll(".lang button")) button.classList.toggle("on", button.dataset.lang === state.lang);
  document.title = `${t("subtitle")} — ${t("title")}`;
}

let toastTimer = null;
function toast(text, kind) {
  const box = $("toast");
  box.textContent = text;
  box.className = `toast ${kind || ""}`;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, kind === "alert" ? 6000 : 3500);
}

function problem(error) {
  if (error.status === 501) return t("notAvailable");
  return t("error", { error: (error.data && (error.data.detail || error.data.error)) || error.message });
}

// ---------------------------------------------------------------- acting

async function refresh() {
  if (state.polling) return;
  state.polling = true;
  try {
    const chats = await Promise.all(state.people.map((p) => api("GET", `/api/chat?user=${p.id}`)));
    chats.forEach((chat, index) => {
      const id = state.people[index].id;
      state.counts[id] = chat.history.filter((e) => e.from === "bot").length;
      if (id !== state.current) return;
      state.seen[id] = state.counts[id];
      const json = JSON.stringify(chat.history);
      if (state.rendered[id] !== json) {
        state.rendered[id] = json;
        drawChat(chat.history);
      }
      for (const answer of chat.answers) {
        if (state.shownAnswers.has(answer.id)) continue;
        state.shownAnswers.add(answer.id);
        toast(answer.text, answer.show_alert ? "alert" : "");
      }
    });
    drawPeople();
  } catch (error) {
    /* the sandbox may be restarting; try again on the next tick */
  } finally {
    state.polling = false;
  }
}

function choose(id) {
  state.current = id;
  state.rendered[id] = null;
  $("menu").hidden = true;
  try { localStorage.setItem("sandbox.person", String(id)); } catch (_) { /* private mode */ }
  drawPeople();
  refresh();
  $("text").focus();
}

async function send(text) {
  if (!text.trim() || state.current === null) return;
  try {
    await api("POST", "/api/send", { user: state.current, text });
    refresh();
  } catch (error) {
    toast(problem(error), "alert");
  }
}

async function tap(messageId, data, control) {
  control.disabled = true;
  try {
    await api("POST", "/api/tap", { user: state.current, message_id: messageId, data });
    refresh();
  } catch (error) {
    toast(problem(error), "alert");
  } finally {
    setTimeout(() => { control.disabled = false; }, 600);
  }
}

async function showMenu() {
  const menu = $("menu");
  if (!menu.hidden) { menu.hidden = true; return; }
  const list = $("menu-list");
  list.replaceChildren();
  try {
    const data = await api("GET", `/api/commands?lang=${state.lang}`);
    if (!data.commands.length) {
      const item = document.createElement("li");
      item.className = "menu-empty";
      item.textContent = t("menuEmpty");
      list.append(item);
    }
    for (const command of data.commands) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "menu-item";
      button.dataset.command = command.command;
      button.innerHTML = '<span class="cmd"></span><span class="desc"></span>';
      button.querySelector(".cmd").textContent = `/${command.command}`;
      button.querySelector(".desc").textContent = command.description;
      button.addEventListener("click", () => { menu.hidden = true; send(`/${command.command}`); });
      item.append(button);
      list.append(item);
    }
    menu.hidden = false;
  } catch (error) {
    toast(problem(error), "alert");
  }
}

async function runNow(kind, button) {
  button.disabled = true;
  toast(t("working"));
  try {
    const data = await api("POST", `/api/run/${kind}`, {});
    const result = data.result || {};
    if (typeof result.sent === "number") {
      toast(t("runSent", { sent: result.sent, recipients: result.recipients ?? "?", skipped: result.skipped ?? 0 }));
    } else {
      const summary = Object.entries(result).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
      toast(t("runDone", { summary: summary || kind }));
    }
    refresh();
  } catch (error) {
    toast(problem(error), "alert");
  } finally {
    button.disabled = false;
  }
}

async function reset(button) {
  if (!window.confirm(t("resetConfirm"))) return;
  button.disabled = true;
  toast(t("working"));
  try {
    await api("POST", "/api/reset", {});
    state.rendered = {};
    state.seen = {};
    state.shownAnswers.clear();
    toast(t("resetDone"));
    refresh();
  } catch (error) {
    toast(problem(error), "alert");
  } finally {
    button.disabled = false;
  }
}

async function setLanguage(lang) {
  try {
    await api("POST", "/api/lang", { lang });
    state.lang = lang;
    try { localStorage.setItem("sandbox.lang", lang); } catch (_) { /* private mode */ }
    drawWords();
    drawPeople();
    $("menu").hidden = true;
    state.rendered = {};
    refresh();
  } catch (error) {
    toast(problem(error), "alert");
  }
}

async function start() {
  const info = await api("GET", "/api/people");
  state.people = info.people;
  state.lang = info.lang || "vi";
  drawWords();
  let saved = null;
  try { saved = Number(localStorage.getItem("sandbox.person")); } catch (_) { /* private mode */ }
  const first = state.people.find((p) => p.id === saved) || state.people[0];
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("text");
    const text = input.value;
    input.value = "";
    send(text);
  });
  $("menu-button").addEventListener("click", showMenu);
  $("run-reminder").addEventListener("click", (e) => runNow("reminder", e.currentTarget));
  $("run-digest").addEventListener("click", (e) => runNow("digest", e.currentTarget));
  $("reset").addEventListener("click", (e) => reset(e.currentTarget));
  for (const button of document.querySelectorAll(".lang button")) {
    button.addEventListener("click", () => setLanguage(button.dataset.lang));
  }
  if (first) choose(first.id);
  setInterval(refresh, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  start().catch((error) => toast(problem(error), "alert"));
});
