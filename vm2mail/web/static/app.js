// The web inbox page: login, list, play (decrypting in the page), act, and live updates over SSE.
import { errorText, language, setLanguage, t } from "./i18n.js";
import * as pgp from "./pgp.js";

const $ = (id) => document.getElementById(id);
const state = { session: null, view: "all", page: 1, pages: 1, items: [], playing: null, events: null };

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = "GET", body, blob, raw = false } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (blob !== undefined) headers["Content-Type"] = blob.type || "application/octet-stream";
  if (method !== "GET" && state.session) headers["X-CSRF-Token"] = state.session.csrf;
  let response;
  try {
    response = await fetch(`/inbox/api/${path}`, {
      method, headers, body: blob ?? (body === undefined ? undefined : JSON.stringify(body)),
      credentials: "same-origin", cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", t("err_network"));
  }
  if (!response.ok) {
    let data = {};
    try { data = await response.json(); } catch { /* not JSON: keep the status */ }
    throw new ApiError(response.status, data.error || "failed", data.message || response.statusText);
  }
  return raw ? response.arrayBuffer() : response.json();
}

// A message for what the user just did clears an older alert; a live notice ({ quiet }) does not.
function say(text, { quiet = false } = {}) {
  if (!quiet) $("alert").hidden = true;
  $("status").textContent = text;
}

function alarm(text) {
  const box = $("alert");
  box.textContent = text;
  box.hidden = false;
}

function problem(error) {
  if (error instanceof ApiError) {
    if (error.status === 401 && error.code === "session") return showLogin(errorText("session"));
    return alarm(errorText(error.code, error.message));
  }
  if (error instanceof pgp.KeyError) return alarm(t(error.code));
  alarm(String(error?.message || error));
}

// -- login -------------------------------------------------------------------------------------------

function showLogin(message) {
  state.session = null;
  state.events?.close();
  pgp.lock();
  learned.clear();
  // Nothing of the mailbox stays on screen or in memory: the player and the list are emptied.
  const player = $("player");
  player.pause();
  if (state.playing?.startsWith("blob:")) URL.revokeObjectURL(state.playing);
  state.playing = null;
  player.removeAttribute("src");
  state.items = [];
  $("list").replaceChildren();
  $("main").hidden = true;
  for (const id of ["who", "logout", "logout-all"]) $(id).hidden = true;
  $("login-view").hidden = false;
  if (message) alarm(message);
  $("login").focus();
}

async function started(session) {
  state.session = session;
  const chosen = localStorage.getItem("vm2mail-lang");
  setLanguage(chosen || session.language.slice(0, 2));
  $("lang").value = language();
  $("login-view").hidden = true;
  $("main").hidden = false;
  $("who").hidden = false;
  $("who").textContent = `${session.name} (${session.mailbox})`;
  $("logout").hidden = false;
  $("logout-all").hidden = false;
  say(t("loggedIn", { mailbox: session.mailbox, name: session.name }));
  await showKey();
  listen();
  await refresh();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-button").disabled = true;
  try {
    const session = await api("login", { method: "POST", body: { login: $("login").value, password: $("password").value } });
    $("password").value = "";
    await started(session);
    $("main").focus();
  } catch (error) {
    if (error instanceof ApiError) alarm(errorText(error.code, error.message));
    else problem(error);
    $("password").focus();
  } finally {
    $("login-button").disabled = false;
  }
});

for (const [id, path] of [["logout", "logout"], ["logout-all", "logout/everywhere"]]) {
  $(id).addEventListener("click", async () => {
    try { await api(path, { method: "POST" }); } catch (error) { problem(error); }
    showLogin();
    say(t("loggedOut"));
  });
}

$("lang").addEventListener("change", () => {
  localStorage.setItem("vm2mail-lang", $("lang").value);
  setLanguage($("lang").value);
  if (state.session) { showKey(); render(); }
});

// -- key ---------------------------------------------------------------------------------------------

async function showKey() {
  const session = state.session;
  // Also for a mailbox no longer encrypted that still holds encrypted voicemails.
  const needed = session.encrypted || state.items.some((item) => item.encrypted);
  $("key-view").hidden = !needed;
  if (!needed) return;
  const record = await pgp.storedKey(session.mailbox);
  $("key-import").hidden = Boolean(record);
  $("key-import-button").hidden = Boolean(record);
  $("key-unlock-button").hidden = !record || pgp.isUnlocked();
  $("key-forget-button").hidden = !record;
  $("passphrase").hidden = Boolean(record) && pgp.isUnlocked();
  $("passphrase").previousElementSibling.hidden = $("passphrase").hidden;
  $("key-state").textContent = !record ? t("keyNone")
    : t(pgp.isUnlocked() ? "keyUnlocked" : "keyStored", { fpr: record.fingerprint });
}

$("key-file").addEventListener("change", async () => {
  const file = $("key-file").files[0];
  if (file) $("key-text").value = await file.text();
});

$("key-import-button").addEventListener("click", async () => {
  try {
    await pgp.importKey(state.session.mailbox, $("key-text").value, $("passphrase").value);
    $("key-text").value = "";
    $("passphrase").value = "";
    say(t("keyImported"));
  } catch (error) { problem(error); }
  await showKey();
});

$("key-unlock-button").addEventListener("click", async () => {
  try {
    await pgp.unlock(state.session.mailbox, $("passphrase").value);
    $("passphrase").value = "";
    await showKey();
    say($("key-state").textContent);
  } catch (error) { problem(error); }
});

$("key-forget-button").addEventListener("click", async () => {
  await pgp.forget(state.session.mailbox);
  await showKey();
});

// -- list --------------------------------------------------------------------------------------------

async function refresh() {
  if (!state.session) return;
  try {
    const data = await api(`voicemails?view=${state.view}&page=${state.page}`);
    state.items = data.items;
    state.pages = data.pages;
    state.total = data.total;
    state.counts = data.counts;
    render();
    if ($("key-view").hidden && state.items.some((item) => item.encrypted)) await showKey();
  } catch (error) { problem(error); }
}

function when(item) {
  return new Intl.DateTimeFormat(language(), {
    dateStyle: "medium", timeStyle: "short", timeZone: state.session.timezone,
  }).format(new Date(item.date));
}

function who(item) {
  return item.caller_name || item.caller_display || item.caller || t("unknownCaller");
}

function button(label, action, extra = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.action = action;
  if (extra) b.setAttribute("aria-label", extra);
  return b;
}

function render() {
  for (const b of document.querySelectorAll("#filters button")) {
    b.setAttribute("aria-pressed", String(b.dataset.view === state.view));
  }
  for (const c of document.querySelectorAll("[data-count]")) c.textContent = `(${state.counts?.[c.dataset.count] ?? 0})`;
  const list = $("list");
  list.replaceChildren();
  for (const listed of state.items) {
    const item = { ...listed, ...learned.get(`${state.view}/${listed.uid}`) };
    const li = document.createElement("li");
    li.dataset.uid = item.uid;
    li.dataset.state = item.state;
    const title = document.createElement("div");
    title.className = "who";
    title.textContent = who(item);
    const stateKey = { new: "stateNew", heard: "stateHeard", saved: "stateSaved" }[item.state];
    const badge = document.createElement("span");
    badge.className = `badge ${item.state}`;
    badge.textContent = t(stateKey);
    title.append(badge);
    const meta = document.createElement("div");
    meta.className = "meta";
    const bits = [when(item)];
    if (item.caller && item.caller_name) bits.push(item.caller_display || item.caller);
    if (item.duration != null) bits.push(t("seconds", { n: item.duration }));
    if (item.encrypted) bits.push(t("encrypted"));
    meta.textContent = bits.join(" · ");
    const actions = document.createElement("div");
    actions.className = "actions";
    const name = who(item);
    actions.append(button(t("play"), "play", `${t("play")}: ${name}, ${when(item)}`));
    if (state.view === "trash") {
      actions.append(button(t("restore"), "restore", `${t("restore")}: ${name}`));
    } else {
      actions.append(item.saved ? button(t("unsave"), "unsave") : button(t("save"), "save"));
      actions.append(button(t("delete"), "delete", `${t("delete")}: ${name}, ${when(item)}`));
    }
    actions.append(button(t("download"), "download"));
    const extra = [];
    if (item.caller) {
      const call = document.createElement("a");
      call.href = `tel:${item.caller}`;
      call.textContent = t("callTel", { number: item.caller_display || item.caller });
      actions.append(call);
      // Callback and SMS go through the gateway, which knows the number only from the outer headers.
      const serverKnows = listed.caller != null;
      if (serverKnows && state.session.can_call) actions.append(button(t("callMe"), "callback", `${t("callMe")}: ${item.caller}`));
      if (serverKnows && state.session.can_sms) {
        actions.append(button(t("sms"), "sms-open", `${t("sms")}: ${item.caller}`));
        extra.push(smsForm(item));
      }
    }
    li.append(title, meta, actions, ...extra);
    list.append(li);
  }
  $("empty").hidden = state.items.length > 0;
  $("page-info").textContent = t("pageInfo", { page: state.page, pages: state.pages, total: state.total ?? 0 });
  $("prev").disabled = state.page <= 1;
  $("next").disabled = state.page >= state.pages;
}

function smsForm(item) {
  const form = document.createElement("form");
  form.className = "sms";
  form.hidden = true;
  const id = `sms-${item.uid}`;
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = t("smsLabel", { number: item.caller, max: state.session.sms_max });
  const text = document.createElement("textarea");
  text.id = id;
  text.rows = 2;
  text.maxLength = state.session.sms_max;
  const send = document.createElement("button");
  send.type = "submit";
  send.textContent = t("smsSend");
  form.append(label, text, send);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    send.disabled = true;
    // One id per message written: a retried request is recognised and never sends twice.
    form.dataset.request ||= crypto.randomUUID();
    try {
      await api(`voicemails/${item.uid}/sms?view=${state.view}`, {
        method: "POST", body: { text: text.value, request: form.dataset.request },
      });
      say(t("smsSent", { number: item.caller }));
      form.hidden = true;
      text.value = "";
      delete form.dataset.request;
    } catch (error) { problem(error); } finally { send.disabled = false; }
  });
  return form;
}

$("filters").addEventListener("click", (event) => {
  const b = event.target.closest("button[data-view]");
  if (!b) return;
  state.view = b.dataset.view;
  state.page = 1;
  refresh();
});
$("prev").addEventListener("click", () => { state.page = Math.max(1, state.page - 1); refresh(); });
$("next").addEventListener("click", () => { state.page = Math.min(state.pages, state.page + 1); refresh(); });

// -- acting on one voicemail -------------------------------------------------------------------------

async function audioUrl(item) {
  const server = `/inbox/api/voicemails/${item.uid}/audio?view=${state.view}`;
  if (!item.encrypted) return server;
  if (!pgp.isUnlocked()) {
    // Phone playback mailboxes can also be played by the gateway (it holds a playback key).
    if (state.session.server_playback) return server;
    throw new pgp.KeyError("keyNeeded");
  }
  say(t("decrypting"));
  const raw = await api(`voicemails/${item.uid}/message?view=${state.view}`, { raw: true });
  const { blob, envelope } = await pgp.voicemailAudio(raw);
  learn(item, envelope);
  return URL.createObjectURL(blob);
}

// What a decryption taught us about a voicemail whose outer headers hide it (private mailboxes):
// kept in this page's memory only, by message id, and shown from then on.
const learned = new Map();

function learn(item, envelope) {
  const known = Object.fromEntries(Object.entries(envelope).filter(([key, value]) => value != null && item[key] == null));
  if (Object.keys(known).length) {
    learned.set(`${state.view}/${item.uid}`, known);
    render();
  }
}

async function play(item) {
  const player = $("player");
  const url = await audioUrl(item);
  if (state.playing?.startsWith("blob:")) URL.revokeObjectURL(state.playing);
  state.playing = url;
  player.src = url;
  $("now-playing").textContent = t("nowPlaying", { who: who(item), when: when(item) });
  await player.play();
  say($("now-playing").textContent);
  if (item.state === "new" && state.view !== "trash") {
    await api(`voicemails/${item.uid}/heard?view=${state.view}`, { method: "POST" });
    await refresh();
  }
}

async function download(item) {
  const url = await audioUrl(item);
  const a = document.createElement("a");
  a.href = url;
  a.download = `voicemail-${item.date.slice(0, 19).replace(/[:T]/g, "-")}.mp3`;
  document.body.append(a);
  a.click();
  a.remove();
}

const DONE = { delete: "deleted", restore: "restored", save: "saved", unsave: "unsaved" };

$("list").addEventListener("click", async (event) => {
  const b = event.target.closest("button[data-action]");
  if (!b) return;
  const uid = Number(b.closest("li").dataset.uid);
  const listed = state.items.find((i) => i.uid === uid);
  if (!listed) return;
  const item = { ...listed, ...learned.get(`${state.view}/${uid}`) };
  b.disabled = true;
  try {
    if (b.dataset.action === "play") await play(item);
    else if (b.dataset.action === "download") await download(item);
    else if (b.dataset.action === "sms-open") {
      const form = b.closest("li").querySelector("form.sms");
      form.hidden = !form.hidden;
      if (!form.hidden) form.querySelector("textarea").focus();
    } else if (b.dataset.action === "callback") {
      await api(`voicemails/${uid}/callback?view=${state.view}`, { method: "POST" });
      say(t("calling"));
    }
    else {
      const at = [...$("list").children].indexOf(b.closest("li"));
      await api(`voicemails/${uid}/${b.dataset.action}?view=${state.view}`, { method: "POST" });
      say(t(DONE[b.dataset.action]));
      await refresh();
      // Keyboard users keep their place: the row now at the same position, else the list's end.
      const rows = $("list").children;
      const target = rows[Math.min(at, rows.length - 1)]?.querySelector("button") ?? $("filters").querySelector("[aria-pressed=true]");
      target?.focus();
    }
  } catch (error) {
    problem(error);
  } finally {
    b.disabled = false;
  }
});

// -- greeting ----------------------------------------------------------------------------------------

let recorder = null;

$("greeting-hear").addEventListener("click", async () => {
  try {
    const data = await api("greeting", { raw: true });
    const player = $("greeting-player");
    if (player.src.startsWith("blob:")) URL.revokeObjectURL(player.src);
    player.src = URL.createObjectURL(new Blob([data], { type: "audio/mpeg" }));
    await player.play();
  } catch (error) { problem(error); }
});

async function saveGreeting(blob) {
  try {
    await api("greeting", { method: "PUT", blob });
    say(t("greetingSaved"));
  } catch (error) { problem(error); }
}

$("greeting-record").addEventListener("click", async () => {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    return alarm(t("greetingNoMic"));
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
  recorder.addEventListener("stop", async () => {
    for (const track of stream.getTracks()) track.stop();
    $("greeting-record").hidden = false;
    $("greeting-stop").hidden = true;
    await saveGreeting(new Blob(chunks, { type: recorder.mimeType.split(";")[0] || "audio/webm" }));
    $("greeting-record").focus();
  });
  recorder.start();
  $("greeting-record").hidden = true;
  $("greeting-stop").hidden = false;
  $("greeting-stop").focus();
  say(t("greetingRecording"));
});

$("greeting-stop").addEventListener("click", () => recorder?.stop());

$("greeting-upload").addEventListener("click", async () => {
  const file = $("greeting-file").files[0];
  if (file) await saveGreeting(file);
});

$("greeting-remove").addEventListener("click", async () => {
  try {
    await api("greeting", { method: "DELETE" });
    say(t("greetingRemoved"));
  } catch (error) { problem(error); }
});

// -- live updates ------------------------------------------------------------------------------------

let pending = null;

function listen() {
  state.events?.close();
  const events = new EventSource("/inbox/api/events");
  state.events = events;
  events.addEventListener("open", () => refresh()); // (re)connected: catch up on what we missed
  events.addEventListener("error", () => {
    // An error answer (mail server down, session over) closes an EventSource for good: try again
    // later; the list request then shows the login form if the session is over.
    if (events.readyState === EventSource.CLOSED && state.events === events) {
      setTimeout(() => { if (state.session && state.events === events) { refresh(); listen(); } }, 5000);
    }
  });
  events.addEventListener("change", (event) => {
    const change = JSON.parse(event.data);
    if (change.kind === "new") say(t("newVoicemail"), { quiet: true });
    clearTimeout(pending);
    pending = setTimeout(refresh, 100); // a burst of changes costs one list request
  });
}

// -- start -------------------------------------------------------------------------------------------

setLanguage((navigator.language || "en").slice(0, 2));
$("lang").value = language();
api("session").then(started, (error) => {
  if (error instanceof ApiError && error.status === 401) showLogin();
  else problem(error);
});
