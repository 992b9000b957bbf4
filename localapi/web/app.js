// The sandbox web chat: pick a demo person, chat with the real bot as them. No build step.
"use strict";

const POLL_MS = 700;
const INFO_MS = 60_000;                     // how often the sandbox's date and time zone are read again
const DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh";  // the bot's zone when the server does not say
const SEEN_KEY = "sandbox.seenAnswers";      // sessionStorage: button answers this tab already showed
const state = {
  lang: "vi",
  people: [],
  current: null,
  timezone: DEFAULT_TIMEZONE,  // the bot's time zone (IANA), from /api/people
  today: null,                 // the sandbox clock's date (ISO), from /api/people
  clock: null,                 // "seed" or "real", from /api/people
  rendered: {},   // user id -> JSON of the history last drawn
  drawn: {},      // user id -> {message id: JSON} of the messages last drawn
  seen: {},       // user id -> bot messages already looked at
  counts: {},     // user id -> bot messages now
  seenAnswers: new Set(),  // callback answer ids already shown (or there before the page loaded)
  stick: true,    // the chat is scrolled to its end: keep it there when things grow
  polling: false,
};

const $ = (id) => document.getElementById(id);
const locale = () => (state.lang === "vi" ? "vi-VN" : "en-GB");
// Numbers the reader's way: 1.234,5 in Vietnamese, 1,234.5 in English.
const number = (value) => new Intl.NumberFormat(locale()).format(value);
const t = (key, values) => {
  const words = (window.I18N[state.lang] || window.I18N.vi);
  let text = key.split(".").reduce((table, part) => (table ? table[part] : undefined), words) || key;
  for (const [name, value] of Object.entries(values || {})) {
    text = text.replace(`{${name}}`, typeof value === "number" ? number(value) : value);
  }
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

// ---------------------------------------------------------------- dates and times

// "2026-06-30" -> "30/06/2026" (the same in both languages, as the bot writes dates).
function dayOf(iso) {
  const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(iso || ""));
  return match ? `${match[3]}/${match[2]}/${match[1]}` : "";
}

const formats = {};
function formatIn(kind) {
  const key = `${kind}|${locale()}|${state.timezone}`;
  if (!formats[key]) {
    const options = kind === "time"
      ? { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }
      : { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    try {
      formats[key] = new Intl.DateTimeFormat(locale(), { ...options, timeZone: state.timezone });
    } catch (_) {  // a zone this browser does not know
      formats[key] = new Intl.DateTimeFormat(locale(), { ...options, timeZone: DEFAULT_TIMEZONE });
    }
  }
  return formats[key];
}

// A message's time of day in the bot's time zone (not the browser's).
function timeOf(seconds) {
  return formatIn("time").format(new Date(seconds * 1000));
}

// dd/mm/yyyy HH:mm in the bot's time zone.
function dateTimeOf(seconds) {
  const parts = Object.fromEntries(formatIn("full").formatToParts(new Date(seconds * 1000)).map((p) => [p.type, p.value]));
  return `${parts.day}/${parts.month}/${parts.year} ${parts.hour}:${parts.minute}`;
}

// ---------------------------------------------------------------- drawing

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
    row.classList.add("wide");  // a chart takes the whole width the chat allows
    const img = document.createElement("img");
    img.className = "photo";
    img.alt = "";
    if (biggest.width && biggest.height) {  // keeps the place while it loads: no jump
      img.width = biggest.width;
      img.height = biggest.height;
    }
    img.addEventListener("load", keepAtEnd);
    img.src = `/api/file/${encodeURIComponent(biggest.file_id)}?inline=1`;
    box.append(img);
  }
  if (message.document) {
    const link = document.createElement("a");
    link.className = "document";
    link.href = `/api/file/${encodeURIComponent(message.document.file_id)}`;
    link.download = message.document.file_name || "file";
    link.innerHTML = '<span class="doc-icon" aria-hidden="true">⬇</span>';
    const name = document.createElement("span");
    name.className = "doc-name";
    name.textContent = message.document.file_name || "file";
    const hint = document.createElement("span");
    hint.className = "doc-hint";
    const size = message.document.file_size ? `${number(Math.max(1, Math.round(message.document.file_size / 1024)))} KB · ` : "";
    hint.textContent = `${size}${t("download")}`;
    link.append(name, hint);
    box.append(link);
  }
  const text = message.text ?? message.caption;
  if (text) box.append(formatted(text, message.parse_mode));

  const meta = document.createElement("div");
  meta.className = "meta";
  const when = message.edit_date || message.date;
  meta.textContent = (message.edit_date ? `${t("edited")} · ` : "") + timeOf(when);
  if (state.clock !== "seed") meta.title = dateTimeOf(when);  // a seed clock's date is not the wall clock's
  box.append(meta);
  row.append(box);

  const keyboard = (message.reply_markup || {}).inline_keyboard;
  if (!mine && Array.isArray(keyboard) && keyboard.length) {
    row.classList.add("wide");  // buttons get the whole width, as in Telegram: short labels never break
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

function atEnd(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}

function scrollToEnd() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
  state.stick = true;
}

// Something grew or shrank (a photo loaded, the notice bar came or went, the keyboard opened):
// a chat that was at its end stays there.
function keepAtEnd() {
  if (state.stick) scrollToEnd();
}

function drawChat(history) {
  const list = $("messages");
  const sameUser = list.dataset.user === String(state.current);
  const before = (sameUser && state.drawn[state.current]) || {};
  const now = {};
  let changed = null;  // the newest message that is new or was edited since the last drawing
  for (const entry of history) {
    const json = JSON.stringify(entry.message);
    now[entry.message.message_id] = json;
    if (before[entry.message.message_id] !== json) changed = entry.message.message_id;
  }
  state.drawn[state.current] = now;
  const top = list.scrollTop;
  list.replaceChildren();
  if (!history.length) {
    const empty = document.createElement("div");
    empty.className = "empty";
    empty.textContent = t("emptyChat");
    list.append(empty);
  }
  for (const entry of history) list.append(bubble(entry));
  list.dataset.user = String(state.current);
  const last = history.length ? history[history.length - 1].message.message_id : null;
  if (!sameUser || state.stick || (changed !== null && changed === last)) {
    scrollToEnd();  // a new message or an edit of the newest: show the end of the chat
  } else if (changed !== null) {
    list.scrollTop = top;
    const row = list.querySelector(`[data-message-id="${changed}"]`);
    if (row) row.scrollIntoView({ block: "nearest" });  // an older message was edited: bring it into view
    state.stick = atEnd(list);
  } else {
    list.scrollTop = top;
  }
}

function personLine(person) {
  return `${t(`roles.${person.role}`)} · ${person.unit}`;
}

function drawPeople() {
  const list = $("people-list");
  list.replaceChildren();
  const select = $("person-select");
  if (select.options.length !== state.people.length) select.replaceChildren();
  state.people.forEach((person, index) => {
    const unread = person.id === state.current ? 0 : Math.max(0, (state.counts[person.id] || 0) - (state.seen[person.id] || 0));
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "person" + (person.id === state.current ? " on" : "");
    button.dataset.personId = person.id;
    button.innerHTML = '<span class="avatar" aria-hidden="true"></span><span class="who"><span class="name"></span>' +
      '<span class="role"></span></span>';
    const words = person.name.split(" ");
    const avatar = button.querySelector(".avatar");
    avatar.textContent = words[0].slice(0, 1) + words[words.length - 1].slice(0, 1);
    avatar.dataset.role = person.role;
    button.querySelector(".name").textContent = person.name;
    button.querySelector(".role").textContent = personLine(person);
    if (unread) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = number(unread);
      button.append(badge);
    }
    button.addEventListener("click", () => choose(person.id));
    item.append(button);
    list.append(item);

    // The phone's drop-down: only touched when its words change, so an open picker is not disturbed.
    let option = select.options[index];
    if (!option) {
      option = document.createElement("option");
      select.append(option);
    }
    const label = `${person.name} · ${personLine(person)}${unread ? ` — ${t("unread", { count: unread })}` : ""}`;
    if (option.value !== String(person.id)) option.value = String(person.id);
    if (option.textContent !== label) option.textContent = label;
  });
  if (state.current !== null && select.value !== String(state.current)) select.value = String(state.current);
  const person = state.people.find((p) => p.id === state.current);
  $("chat-name").textContent = person ? person.name : "";
  $("chat-role").textContent = person ? personLine(person) : "";
}

function drawBanner() {
  const banner = $("banner");
  const day = dayOf(state.today);
  banner.hidden = !day;
  banner.textContent = day ? t("banner", { date: day }) : "";
  banner.title = day && state.clock ? t(state.clock === "seed" ? "clockSeed" : "clockReal", { timezone: state.timezone }) : "";
  if (state.clock) banner.dataset.clock = state.clock;
}

function drawWords() {
  document.documentElement.lang = state.lang;
  for (const element of document.querySelectorAll("[data-t]")) element.textContent = t(element.dataset.t);
  for (const element of document.querySelectorAll("[data-t-placeholder]")) element.placeholder = t(element.dataset.tPlaceholder);
  for (const element of document.querySelectorAll("[data-t-aria]")) element.setAttribute("aria-label", t(element.dataset.tAria));
  for (const button of document.querySelectorAll(".lang button")) button.classList.toggle("on", button.dataset.lang === state.lang);
  document.title = `${t("subtitle")} — ${t("title")}`;
  drawBanner();
}

// The one notice bar under the chat header: button answers and the page's own messages.
// An alert (show_alert, or an error) stays until closed, as Telegram's alert waits for OK.
let noticeTimer = null;
function notify(text, kind) {
  const box = $("notice");
  $("notice-text").textContent = text;
  box.className = `notice ${kind || ""}`;
  box.hidden = false;
  clearTimeout(noticeTimer);
  if (kind !== "alert") noticeTimer = setTimeout(closeNotice, 4000);
  keepAtEnd();
}

function closeNotice() {
  clearTimeout(noticeTimer);
  $("notice").hidden = true;
  keepAtEnd();
}

function problem(error) {
  if (error.status === 501) return t("notAvailable");
  return t("error", { error: (error.data && (error.data.detail || error.data.error)) || error.message });
}

// ---------------------------------------------------------------- button answers, each shown once

function loadSeenAnswers() {
  try {
    const ids = JSON.parse(sessionStorage.getItem(SEEN_KEY) || "[]");
    if (Array.isArray(ids)) for (const id of ids) state.seenAnswers.add(String(id));
  } catch (_) { /* private mode or garbage: start empty */ }
}

function saveSeenAnswers() {
  try { sessionStorage.setItem(SEEN_KEY, JSON.stringify([...state.seenAnswers])); } catch (_) { /* private mode */ }
}

// How many bot messages of each chat were looked at, kept over a reload so badges do not come back.
const SEEN_COUNTS_KEY = "sandbox.seenCounts";
function loadSeenCounts(chats) {
  let stored = {};
  try { stored = JSON.parse(sessionStorage.getItem(SEEN_COUNTS_KEY) || "{}") || {}; } catch (_) { /* start afresh */ }
  chats.forEach((chat, index) => {
    const id = state.people[index].id;
    const count = chat.history.filter((e) => e.from === "bot").length;
    // A chat this tab never counted: what is there now is old news, not unread.
    state.seen[id] = typeof stored[id] === "number" ? Math.min(stored[id], count) : count;
  });
}

function saveSeenCounts() {
  try { sessionStorage.setItem(SEEN_COUNTS_KEY, JSON.stringify(state.seen)); } catch (_) { /* private mode */ }
}

// Take every answer of every chat in: show the current person's newest unseen one, mark the rest seen.
// Ids the server no longer has are forgotten, so a restarted sandbox that counts its ids from 1 again
// is not mistaken for answers already shown.
function takeAnswers(chats, show) {
  const existing = new Set();
  let newest = null;
  chats.forEach((chat, index) => {
    for (const answer of chat.answers || []) {
      const id = String(answer.id);
      existing.add(id);
      if (state.seenAnswers.has(id)) continue;
      state.seenAnswers.add(id);
      if (show && state.people[index].id === state.current) newest = answer;
    }
  });
  for (const id of [...state.seenAnswers]) if (!existing.has(id)) state.seenAnswers.delete(id);
  saveSeenAnswers();
  if (newest) notify(newest.text, newest.show_alert ? "alert" : "");
}

// ---------------------------------------------------------------- acting

async function fetchChats() {
  return Promise.all(state.people.map((p) => api("GET", `/api/chat?user=${p.id}`)));
}

async function refresh() {
  if (state.polling) return;
  state.polling = true;
  try {
    const chats = await fetchChats();
    chats.forEach((chat, index) => {
      const id = state.people[index].id;
      state.counts[id] = chat.history.filter((e) => e.from === "bot").length;
      // A reset or restarted sandbox has fewer messages than were seen: start counting from there.
      if (state.seen[id] === undefined || state.seen[id] > state.counts[id]) state.seen[id] = Math.min(state.seen[id] || 0, state.counts[id]);
      if (id !== state.current) return;
      state.seen[id] = state.counts[id];
      const json = JSON.stringify(chat.history);
      if (state.rendered[id] !== json) {
        state.rendered[id] = json;
        drawChat(chat.history);
      }
    });
    takeAnswers(chats, true);
    saveSeenCounts();
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
  // On a touch screen focusing would open the keyboard over half the chat at every pick.
  if (!window.matchMedia("(pointer: coarse)").matches) $("text").focus();
}

async function send(text) {
  if (!text.trim() || state.current === null) return;
  try {
    await api("POST", "/api/send", { user: state.current, text });
    state.stick = true;  // one's own message: go to the end, where the answer will come
    refresh();
  } catch (error) {
    notify(problem(error), "alert");
  }
}

async function tap(messageId, data, control) {
  control.disabled = true;
  try {
    await api("POST", "/api/tap", { user: state.current, message_id: messageId, data });
    refresh();
  } catch (error) {
    notify(problem(error), "alert");
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
    const data = await api("GET", `/api/commands?lang=${state.lang}&user=${state.current}`);
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
    notify(problem(error), "alert");
  }
}

function summaryOf(result) {
  return Object.entries(result)
    .map(([k, v]) => `${k}: ${typeof v === "number" ? number(v) : typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(", ");
}

async function runNow(kind, button) {
  closeActions();
  button.disabled = true;
  notify(t("working"));
  try {
    const data = await api("POST", `/api/run/${kind}`, {});
    const result = data.result || {};
    if (typeof result.sent === "number") {
      const why = result.nobody_text ? ` ${result.nobody_text}` : "";
      notify(t("runSent", { sent: result.sent, recipients: result.recipients ?? "?", skipped: result.skipped ?? 0 }) + why);
    } else {
      notify(t("runDone", { summary: summaryOf(result) || kind }));
    }
    refresh();
  } catch (error) {
    notify(problem(error), "alert");
  } finally {
    button.disabled = false;
  }
}

async function reset(button) {
  closeActions();
  if (!window.confirm(t("resetConfirm"))) return;
  button.disabled = true;
  notify(t("working"));
  try {
    await api("POST", "/api/reset", {});
    state.rendered = {};
    state.drawn = {};
    state.seen = {};
    notify(t("resetDone"));
    loadInfo().catch(() => {});
    refresh();
  } catch (error) {
    notify(problem(error), "alert");
  } finally {
    button.disabled = false;
  }
}

async function setLanguage(lang) {
  closeActions();
  try {
    await api("POST", "/api/lang", { lang });
    state.lang = lang;
    try { localStorage.setItem("sandbox.lang", lang); } catch (_) { /* private mode */ }
    drawWords();
    drawPeople();
    $("menu").hidden = true;
    if (!$("notice").hidden && !$("notice").classList.contains("alert")) closeNotice();  // words of the old language
    state.rendered = {};
    refresh();
  } catch (error) {
    notify(problem(error), "alert");
  }
}

// ---------------------------------------------------------------- the phone's action menu

function closeActions() {
  $("topbar").classList.remove("open");
  $("more").setAttribute("aria-expanded", "false");
}

function toggleActions(event) {
  event.stopPropagation();
  const open = !$("topbar").classList.contains("open");
  $("topbar").classList.toggle("open", open);
  $("more").setAttribute("aria-expanded", String(open));
}

// ---------------------------------------------------------------- start

// The people, the page language, and (when the server says) the bot's time zone and the sandbox's date.
async function loadInfo() {
  const info = await api("GET", "/api/people");
  state.people = info.people;
  state.lang = info.lang || state.lang;
  if (typeof info.timezone === "string" && info.timezone) state.timezone = info.timezone;
  state.today = typeof info.today === "string" ? info.today : null;
  state.clock = typeof info.clock === "string" ? info.clock : null;
  drawWords();
  return info;
}

async function start() {
  await loadInfo();
  // Answers already there when the page opens were shown before (or belong to an old visit): never again.
  loadSeenAnswers();
  try {
    const chats = await fetchChats();
    takeAnswers(chats, false);
    loadSeenCounts(chats);
  } catch (_) { /* the next poll tries again */ }
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
  $("person-select").addEventListener("change", (e) => choose(Number(e.currentTarget.value)));
  $("more").addEventListener("click", toggleActions);
  $("actions").addEventListener("click", (e) => e.stopPropagation());
  document.addEventListener("click", closeActions);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") { closeActions(); $("menu").hidden = true; } });
  $("notice-close").addEventListener("click", closeNotice);
  const list = $("messages");
  list.addEventListener("scroll", () => { state.stick = atEnd(list); }, { passive: true });
  if (window.ResizeObserver) new ResizeObserver(keepAtEnd).observe(list);
  if (first) choose(first.id);
  setInterval(refresh, POLL_MS);
  setInterval(() => { loadInfo().then(drawPeople).catch(() => {}); }, INFO_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  start().catch((error) => notify(problem(error), "alert"));
});
