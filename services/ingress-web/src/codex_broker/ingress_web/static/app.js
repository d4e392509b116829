// The web chat page. Message HTML comes rendered (and escaped) by the server; everything else is
// put in with textContent. Changes arrive on one SSE feed; a message record replaces the one of
// its id, so a record seen twice (reload, reconnect) is harmless.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { user: null, thread: null, threads: new Map(), messages: new Map(), feed: null, source: null, files: [] };

function clientId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options };
  if (options.json !== undefined) {
    init.method = init.method || "POST";
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, init);
  let body = {};
  try { body = await response.json(); } catch (_) { body = { ok: false, error: "bad_response" }; }
  if (!response.ok) {
    const error = new Error(body.error || `http_${response.status}`);
    error.body = body;
    error.status = response.status;
    throw error;
  }
  return body;
}

// ---- sign-in ---------------------------------------------------------------------------------

// `up` prints the chat's address with a one-time `#code=` (or an operator shares `#token=`): taken
// out of the address bar at once, so it is neither bookmarked nor in the history
function fromFragment(name) {
  const params = new URLSearchParams(location.hash.slice(1));
  const value = params.get(name);
  if (value) {
    params.delete(name);
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? `#${rest}` : ""));
  }
  return value;
}

function showLogin(tokenRequired) {
  $("chat").hidden = true;
  $("login").hidden = false;
  state.loginCode = state.loginCode || fromFragment("code");
  $("login-token-row").hidden = !tokenRequired || Boolean(state.loginCode);
  const token = fromFragment("token");
  if (token) $("login-token").value = token;
  $("login-name").focus();
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const json = { name: $("login-name").value.trim(), token: $("login-token").value };
    if (state.loginCode) json.code = state.loginCode;
    await api("/api/login", { json });
    state.loginCode = null;
    await start();
  } catch (error) {
    const messages = { bad_token: "That token is not right.", invalid_name: "Use letters, digits, . _ - (up to 40).", bad_code: "That sign-in link was used already or has expired: ask for the token.", admin_token_unset: "No admin token is configured: nobody can sign in." };
    if (error.message === "bad_code") {
      state.loginCode = null;
      $("login-token-row").hidden = false;
    }
    $("login-error").textContent = messages[error.message] || `Could not sign in (${error.message}).`;
  }
}

async function start() {
  let me;
  try {
    me = await api("/api/me");
  } catch (error) {
    showLogin(Boolean(error.body && error.body.token_required));
    return;
  }
  state.user = me.user;
  $("me").textContent = me.user;
  $("login").hidden = true;
  $("chat").hidden = false;
  const listed = await api("/api/threads");
  state.threads = new Map(listed.threads.map((t) => [t.id, t]));
  renderThreads();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("t");
  if (wanted && state.threads.has(wanted)) await openThread(wanted);
  else newThread();
  follow(listed.feed);
}

// ---- the feed ----------------------------------------------------------------------------------

function follow(since) {
  if (state.source) state.source.close();
  state.feed = since;
  const source = new EventSource(`/api/events?since=${encodeURIComponent(since)}`);
  source.onmessage = (event) => {
    state.feed = event.lastEventId || state.feed;
    apply(JSON.parse(event.data));
  };
  source.onerror = () => {
    // EventSource reconnects with Last-Event-ID by itself; a 401 ends it, so check the sign-in
    if (source.readyState === EventSource.CLOSED) setTimeout(() => start(), 1000);
  };
  state.source = source;
}

function apply(change) {
  const thread = change.thread;
  if (change.thread_meta) {
    state.threads.set(thread, { ...(state.threads.get(thread) || {}), ...change.thread_meta });
  }
  if (change.message) {
    const known = state.threads.get(thread) || { id: thread, title: "…" };
    state.threads.set(thread, { ...known, updated_ms: String(change.message.updated_ms) });
    if (thread === state.thread) upsert(change.message);
  }
  renderThreads();
  if (thread === state.thread) renderHead();
}

// ---- threads -----------------------------------------------------------------------------------

function renderThreads() {
  const list = $("threads");
  const sorted = [...state.threads.values()].sort((a, b) => Number(b.updated_ms || 0) - Number(a.updated_ms || 0));
  list.replaceChildren(...sorted.map((t) => {
    const item = document.createElement("li");
    item.dataset.thread = t.id;
    item.className = t.id === state.thread ? "active" : "";
    const dot = document.createElement("span");
    dot.className = `dot ${t.status === "running" ? "running" : ""}`;
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = t.title || t.id;
    title.title = `${t.title || ""} — ${t.created_by || ""}`;
    item.append(dot, title);
    item.addEventListener("click", () => openThread(t.id));
    return item;
  }));
}

function renderHead() {
  const meta = state.threads.get(state.thread);
  $("thread-title").textContent = meta ? meta.title : "New thread";
  $("thread-status").textContent = meta && meta.status === "running" ? "Codex is working…" : "";
  $("cmd-status").disabled = !state.thread;
  $("cmd-new").disabled = !state.thread;
}

function newThread() {
  state.thread = null;
  state.messages = new Map();
  $("messages").replaceChildren();
  history.replaceState(null, "", location.pathname);
  renderThreads();
  renderHead();
  $("text").focus();
}

async function openThread(id) {
  const data = await api(`/api/threads/${id}`);
  state.thread = id;
  state.threads.set(id, { ...(state.threads.get(id) || {}), ...data.thread });
  state.messages = new Map();
  $("messages").replaceChildren();
  for (const message of data.messages) upsert(message);
  history.replaceState(null, "", `${location.pathname}#t=${id}`);
  renderThreads();
  renderHead();
}

// ---- messages ----------------------------------------------------------------------------------

function upsert(message) {
  const known = state.messages.get(message.id);
  if (known && Number(known.updated_ms) > Number(message.updated_ms)) return;
  state.messages.set(message.id, message);
  const element = renderMessage(message);
  const list = $("messages");
  const existing = list.querySelector(`[data-id="${message.id}"]`);
  if (existing) {
    existing.replaceWith(element);
    return;
  }
  const later = [...list.children].find((child) => child.dataset.id > message.id);
  list.insertBefore(element, later || null);
  list.scrollTop = list.scrollHeight;
}

function renderMessage(message) {
  const item = document.createElement("li");
  item.dataset.id = message.id;
  item.dataset.kind = message.kind;
  item.className = "msg";
  if (!message.author.bot && message.author.id === state.user) item.classList.add("mine");
  if (message.only_for) item.classList.add("only-you");
  const author = document.createElement("div");
  author.className = "author";
  author.textContent = message.only_for ? `${message.author.name} (only you see this)` : message.author.name;
  item.append(author);
  if (message.kind === "view") renderView(item, message);
  const body = document.createElement("div");
  body.className = "body";
  if (message.html) body.innerHTML = message.html; // rendered by the server with raw HTML off
  else body.textContent = message.text;
  item.append(body);
  if (message.files.length) item.append(renderFiles(message.files));
  if (message.buttons.length) item.append(renderButtons(message));
  return item;
}

function renderView(item, message) {
  const view = message.view;
  item.classList.add("view");
  if (view.finished) item.classList.add("finished", view.outcome || "completed");
  item.dataset.run = view.run_id;
  const activity = document.createElement("div");
  activity.className = "activity";
  activity.textContent = view.activity;
  item.append(activity);
  if (view.plan.length) {
    const plan = document.createElement("ol");
    plan.className = "plan";
    for (const step of view.plan) {
      const li = document.createElement("li");
      li.textContent = `${step.status === "completed" ? "✓" : step.status === "in_progress" ? "…" : "○"} ${step.step}`;
      plan.append(li);
    }
    item.append(plan);
  }
  if (view.tasks.length) {
    const tasks = document.createElement("ul");
    tasks.className = "tasks";
    for (const task of view.tasks) {
      const li = document.createElement("li");
      li.className = task.status;
      li.textContent = `${task.status === "complete" ? "✓" : task.status === "error" ? "✗" : "…"} ${task.title.replaceAll("`", "")}`;
      if (task.output) {
        const pre = document.createElement("pre");
        pre.textContent = task.output;
        li.append(pre);
      }
      tasks.append(li);
    }
    item.append(tasks);
  }
  if (view.show_stop) {
    const stop = document.createElement("button");
    stop.className = "danger small stop";
    stop.textContent = "Stop";
    stop.addEventListener("click", () => click(message, "stop", view.run_id, stop));
    item.append(stop);
  }
}

function renderFiles(files) {
  const box = document.createElement("div");
  box.className = "files";
  for (const file of files) {
    const link = document.createElement("a");
    link.href = `/api/files/${file.id}`;
    link.download = file.name;
    link.textContent = `📎 ${file.name} (${Math.max(1, Math.round(file.size / 1024))} KB)`;
    box.append(link);
  }
  return box;
}

function renderButtons(message) {
  const box = document.createElement("div");
  box.className = "buttons";
  for (const button of message.buttons) {
    const element = document.createElement("button");
    element.className = button.style === "primary" ? "primary small" : button.style === "danger" ? "danger small" : "small";
    element.textContent = button.label;
    element.dataset.action = button.action;
    element.addEventListener("click", () => click(message, button.action, button.value, element));
    box.append(element);
  }
  return box;
}

async function click(message, action, value, element) {
  element.disabled = true;
  try {
    await api(`/api/threads/${message.thread}/actions`, {
      json: { action, value, message_id: message.id, client_id: clientId() },
    });
  } catch (error) {
    element.disabled = false;
    $("send-error").textContent = `Could not send the click (${error.message}).`;
  }
}

// ---- sending -------------------------------------------------------------------------------------

async function attach(event) {
  $("send-error").textContent = "";
  for (const file of event.target.files) {
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const done = await api("/api/files", { method: "POST", body: form });
      state.files.push(done.file);
    } catch (error) {
      $("send-error").textContent = `Could not attach ${file.name} (${error.message}).`;
    }
  }
  event.target.value = "";
  renderPending();
}

function renderPending() {
  $("pending-files").replaceChildren(...state.files.map((f) => {
    const chip = document.createElement("span");
    chip.textContent = `📎 ${f.name}`;
    return chip;
  }));
}

async function send(text) {
  const body = { client_id: clientId(), text, file_ids: state.files.map((f) => f.id) };
  $("send-error").textContent = "";
  $("send").disabled = true;
  try {
    // a failed request is sent again with the same client id: the server stores it once
    let result;
    for (let attempt = 0; ; attempt++) {
      try {
        result = state.thread
          ? await api(`/api/threads/${state.thread}/messages`, { json: body })
          : await api("/api/threads", { json: body });
        break;
      } catch (error) {
        if (attempt >= 2 || (error.status && error.status < 500)) throw error;
      }
    }
    state.files = [];
    renderPending();
    $("text").value = "";
    if (state.thread !== result.thread) {
      state.threads.set(result.thread, { id: result.thread, title: text.slice(0, 80) || "New thread", created_by: state.user, updated_ms: String(Date.now()) });
      await openThread(result.thread);
    } else {
      upsert(result.message);
    }
  } catch (error) {
    $("send-error").textContent = `Not sent (${error.message}).`;
  } finally {
    $("send").disabled = false;
  }
}

function submit(event) {
  event.preventDefault();
  const text = $("text").value;
  if (text.trim() || state.files.length) send(text);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("composer").addEventListener("submit", submit);
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) submit(event);
  });
  $("file").addEventListener("change", attach);
  $("new-thread").addEventListener("click", newThread);
  $("cmd-status").addEventListener("click", () => send("/status"));
  $("cmd-new").addEventListener("click", () => send("/new"));
  $("logout").addEventListener("click", async () => {
    await api("/api/logout", { method: "POST" });
    if (state.source) state.source.close();
    start();
  });
  start();
});
