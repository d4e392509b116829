// codex-broker admin page: a small static app over /admin/api/*. No build step, no external
// resources; every value from the API is inserted as text (never as HTML).
"use strict";

(() => {
  const WRITES = ["POST", "PUT", "PATCH", "DELETE"];
  const PAGE_SIZE = 25;
  const VIEWS = ["overview", "sessions", "jobs", "profiles", "authors", "usage", "channels", "audit"];
  const state = { view: "overview", platform: "", offset: 0, selected: null, needsToken: false };

  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers -------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function fill(id, ...nodes) {
    const el = $(id);
    el.replaceChildren(...nodes.flat());
    return el;
  }

  function when(ms) {
    if (ms === null || ms === undefined || ms === "") return "–";
    const date = new Date(Number(ms));
    return Number.isNaN(date.getTime()) ? String(ms) : date.toLocaleString();
  }

  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    return seconds < 60 ? `${Math.round(seconds)} s ago` : `${Math.round(seconds / 60)} min ago`;
  }

  function badge(text, kind) {
    return h("span", { class: `badge ${kind || text || ""}` }, text || "–");
  }

  function table(caption, columns, rows, empty) {
    if (!rows || rows.length === 0) return h("p", { class: "empty" }, empty || "Nothing here.");
    const head = h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)));
    const body = rows.map((row) =>
      h(
        "tr",
        { class: columns.rowClass ? columns.rowClass(row) : null },
        columns.map((c) => h("td", { class: c.num ? "num" : null }, c.get(row) ?? "–")),
      ),
    );
    return h("div", { class: "table-wrap" }, h("table", {}, h("caption", {}, caption), h("thead", {}, head), h("tbody", {}, body)));
  }

  function logLines(records) {
    if (!records || records.length === 0) return h("p", { class: "empty" }, "No log lines.");
    const skip = new Set(["ts", "level", "service", "logger", "msg", "session_key"]);
    const lines = records.map((r) => {
      const extra = Object.fromEntries(Object.entries(r).filter(([k]) => !skip.has(k)));
      const tail = Object.keys(extra).length ? ` ${JSON.stringify(extra)}` : "";
      return h("div", { class: `lvl-${r.level || "INFO"}` }, `${r.ts || ""} ${r.level || ""} ${r.service || ""} ${r.msg || ""}${tail}`);
    });
    return h("pre", { class: "logs", tabindex: "0", "aria-label": "log lines" }, lines);
  }

  // Sections in modules of their own (ops.js, …) draw themselves when a view has loaded.
  function loaded(view, detail) {
    document.dispatchEvent(new CustomEvent("admin:loaded", { detail: { view, ...detail } }));
  }

  // ---- notices -----------------------------------------------------------------------------
  const MESSAGES = {
    admin_auth_required: "Please log in with the admin token.",
    admin_login_refused: "The token was not accepted.",
    admin_host_refused: "This address is not one the admin page may be used from (ADMIN_ALLOWED_HOSTS).",
    admin_origin_mismatch: "The request came from another origin.",
    admin_json_required: "The request was not JSON.",
    invalid_platform: "Platform must be slack or feishu.",
    unknown_session: "That session no longer exists.",
    session_active: "The session has an active turn; stop it first.",
    unknown_profile: "No such profile.",
    profile_active: "The active profile cannot be deleted; activate another one first.",
    invalid_auth_json: "That file is not a Codex auth.json (needs tokens or OPENAI_API_KEY).",
    invalid_json_field: "That file is not valid JSON.",
    invalid_api_key: "That does not look like an API key.",
    invalid_profile_name: "Profile names: letters, digits, . _ - (max 64).",
    invalid_email: "Enter a valid email address.",
    invalid_name: "Enter a name without < > or control characters (max 100).",
    invalid_user_id: "Enter the platform user id (e.g. U0123ABC or ou_…).",
    missing_required_body: "A required field is empty.",
    unknown_author: "No such mapping.",
    redis_unavailable: "Redis is unavailable; try again.",
    payload_too_large: "That is too large.",
  };

  function notify(message, kind) {
    const el = $("notice");
    el.textContent = message;
    el.className = `notice ${kind || ""}`;
    el.hidden = !message;
  }

  function say(message) {
    $("status-line").textContent = message;
  }

  class ApiFailure extends Error {
    constructor(status, body) {
      const code = (body && body.error) || `http_${status}`;
      const field = body && body.field ? ` (${body.field})` : "";
      super(`${MESSAGES[code] || code}${field}`);
      this.status = status;
      this.code = code;
      this.field = body && body.field;
    }
  }

  // ---- API ---------------------------------------------------------------------------------
  // The session is the HttpOnly cookie the login endpoint set: this script never holds the token
  // after sending it once. Writes are JSON (an empty object when there is nothing to send): the
  // server refuses anything else, which is what keeps other sites' forms out.
  async function api(method, path, body) {
    const headers = { accept: "application/json" };
    if (body === undefined && WRITES.includes(method)) body = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "same-origin",
    });
    let data;
    try {
      data = await response.json();
    } catch {
      data = { ok: false, error: `http_${response.status}` };
    }
    if (response.status === 401 && !path.endsWith("/login")) {
      showLogin("");
      throw new ApiFailure(401, data);
    }
    if (!response.ok || data.ok === false) throw new ApiFailure(response.status, data);
    return data;
  }

  function withPlatform(path, extra) {
    const params = new URLSearchParams(extra || {});
    if (state.platform) params.set("platform", state.platform);
    const query = params.toString();
    return query ? `${path}?${query}` : path;
  }

  // ---- login -------------------------------------------------------------------------------
  function showLogin(rejected) {
    state.needsToken = true;
    $("login").hidden = false;
    $("main").hidden = true;
    $("signout").hidden = true;
    notify(rejected || "", rejected ? "" : "info");
    $("token").focus();
  }

  function hideLogin() {
    state.needsToken = false;
    $("login").hidden = true;
    $("main").hidden = false;
    $("signout").hidden = false;
  }

  async function logIn(credential) {
    try {
      await api("POST", "/admin/api/login", credential);
    } catch (error) {
      if (error instanceof ApiFailure && error.status === 401) {
        showLogin(credential.code ? "That login link was already used or has expired." : MESSAGES.admin_login_refused);
      }
      else notify(error.message || String(error));
      return false;
    }
    hideLogin();
    notify("");
    return true;
  }

  // `codex-broker up` prints /admin#code=<one-time code>: a fragment never reaches the server.
  // Take it out of the address bar (and history) before anything else, then redeem it.
  function takeLoginCode() {
    const match = location.hash.match(/^#code=([A-Za-z0-9_-]+)$/);
    if (!match) return null;
    history.replaceState(null, "", `${location.pathname}${location.search}#overview`);
    return match[1];
  }

  // ---- views -------------------------------------------------------------------------------
  function sessionColumns(onPick) {
    const columns = [
      {
        label: "Session",
        get: (s) => h("button", { type: "button", class: "secondary", onclick: () => onPick(s.session_key), "aria-label": `Open session ${s.session_key}` }, s.session_key),
      },
      { label: "Platform", get: (s) => s.platform },
      { label: "State", get: (s) => badge(s.state) },
      { label: "Codex thread", get: (s) => (s.thread_id ? h("code", {}, s.thread_id) : h("span", { class: "muted" }, "new on next turn")) },
      { label: "Profile", get: (s) => s.auth_profile || "–" },
      { label: "Queued", get: (s) => s.queue_length, num: true },
      { label: "Tokens", get: (s) => s.total_tokens ?? "–", num: true },
      { label: "Last activity", get: (s) => when(s.last_activity_ms) },
    ];
    columns.rowClass = (s) => (s.session_key === state.selected ? "selected" : null);
    return columns;
  }

  function openSession(key) {
    location.hash = `#sessions/${encodeURIComponent(key)}`;
  }

  async function loadOverview() {
    const data = await api("GET", withPlatform("/admin/api/status"));
    const counts = [
      ["Services", data.services.length],
      ["Sessions", data.sessions.count],
      ["Active runs", data.active_runs.count],
      ["Jobs", data.jobs.count],
      ["Dead letters", data.dead_letter.count],
    ];
    fill("overview-counts", counts.map(([label, n]) => h("div", { class: "count" }, h("span", { class: "n" }, n), h("span", { class: "label" }, label))));
    fill(
      "overview-services",
      table("Live heartbeats", [
        { label: "Service", get: (s) => s.service },
        { label: "Instance", get: (s) => h("code", {}, s.instance) },
        { label: "Host", get: (s) => s.host },
        { label: "Seen", get: (s) => ago(s.age_s) },
        { label: "Load", get: (s) => (s.capacity !== undefined ? `${s.active ?? 0}/${s.capacity}` : "–") },
      ], data.services, "No service heartbeats: nothing is running."),
    );
    fill(
      "overview-runs",
      table("Runs in flight", [
        { label: "Run", get: (r) => h("code", {}, r.run_id) },
        { label: "Session", get: (r) => (r.session_key ? h("button", { type: "button", class: "secondary", onclick: () => openSession(r.session_key) }, r.session_key) : "–") },
        { label: "Runner", get: (r) => r.runner_id || "–" },
        { label: "Status", get: (r) => badge(r.status) },
        { label: "Started", get: (r) => when(r.started_at_ms) },
      ], data.active_runs.items, "No active runs."),
    );
    const streams = data.queues.streams.filter((s) => s.length > 0 || s.groups.some((g) => g.pending));
    fill(
      "overview-queues",
      table("Streams (length, pending and lag per consumer group)", [
        { label: "Stream", get: (s) => h("code", {}, s.stream) },
        { label: "Length", get: (s) => s.length, num: true },
        { label: "Groups", get: (s) => s.groups.map((g) => `${g.name}: ${g.pending} pending, lag ${g.lag ?? "?"}`).join("; ") || "–" },
      ], streams, "All streams are empty."),
      table("Sessions with queued input", [
        { label: "Session", get: (q) => h("button", { type: "button", class: "secondary", onclick: () => openSession(q.session_key) }, q.session_key) },
        { label: "Queued", get: (q) => q.length, num: true },
      ], data.queues.sessions, "No queued session input."),
    );
    fill("overview-sessions", table("Most recently active", sessionColumns(openSession), data.sessions.items, "No sessions yet."));
    fill("overview-logs", logLines(data.logs));
    say(`Updated ${new Date(data.generated_at_ms).toLocaleTimeString()}`);
    loaded("overview", {});
  }

  async function loadSessions() {
    const data = await api("GET", withPlatform("/admin/api/sessions", { offset: state.offset, limit: PAGE_SIZE }));
    fill("sessions-table", table(`${data.total} sessions, newest activity first`, sessionColumns(openSession), data.items, "No sessions."));
    const last = Math.min(data.offset + data.items.length, data.total);
    $("sessions-page").textContent = data.total ? `${data.offset + 1}–${last} of ${data.total}` : "";
    $("sessions-prev").disabled = data.offset === 0;
    $("sessions-next").disabled = last >= data.total;
    if (state.selected) await loadSessionDetail(state.selected);
    else $("session-detail").hidden = true;
    say(`Updated ${new Date().toLocaleTimeString()}`);
  }

  async function loadSessionDetail(key) {
    let data;
    try {
      data = await api("GET", `/admin/api/sessions/${encodeURIComponent(key)}`);
    } catch (error) {
      $("session-detail").hidden = true;
      throw error;
    }
    const s = data.session;
    $("session-title").textContent = `Session ${s.session_key}`;
    const facts = [
      ["Platform", s.platform],
      ["Conversation", s.conversation_id],
      ["Root message", s.root_message_id],
      ["State", s.state + (s.active_run_id ? ` (run ${s.active_run_id})` : "")],
      ["Codex thread", s.thread_id || "none — next turn starts a fresh thread"],
      ["Auth profile", s.auth_profile || "active profile"],
      ["Workspace", s.workspace],
      ["Created", when(s.created_at_ms)],
      ["Last activity", when(s.last_activity_ms)],
      ["Tokens", `${s.input_tokens ?? 0} in / ${s.output_tokens ?? 0} out / ${s.total_tokens ?? 0} total`],
      ["Queued input", s.queue_length],
    ];
    fill("session-facts", facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")]));
    fill(
      "session-participants",
      table("People seen in the thread", [
        { label: "User", get: (p) => h("code", {}, p.userId) },
        { label: "Name", get: (p) => p.displayName },
        { label: "GitHub author", get: (p) => (p.githubAuthor ? [`${p.githubAuthor.name} <${p.githubAuthor.email}> `, badge(p.githubAuthor.source)] : h("span", { class: "muted" }, "not mapped")) },
      ], s.participants, "No participants recorded."),
    );
    const items = s.timeline.map((e) =>
      h("li", {}, h("span", { class: "when" }, when(e.at_ms)), h("span", { class: "kind" }, e.kind || "event"), h("span", {}, e.summary || "")),
    );
    fill("session-timeline", items.length ? items : [h("li", { class: "empty" }, "No timeline entries.")]);
    fill("session-logs", logLines(data.logs));
    $("session-reset").disabled = false;
    // set with the title, before the next await: the page never shows a busy session deletable
    $("session-delete").disabled = s.state !== "idle";
    $("session-delete").title = s.state !== "idle" ? "Stop the active turn first" : "";
    const profiles = await api("GET", "/admin/api/auth-profiles");
    const names = ["default", ...profiles.profiles.map((p) => p.name).filter((n) => n !== "default")];
    fill("session-profile", names.map((n) => h("option", { value: n }, n + (n === profiles.active ? " (active)" : ""))));
    $("session-profile").value = s.auth_profile || profiles.active || "default";
    $("session-move").disabled = false;
    $("session-detail").hidden = false;
    loaded("session", { session: s });
  }

  async function loadJobs() {
    const data = await api("GET", withPlatform("/admin/api/jobs"));
    fill(
      "jobs-table",
      table(`${data.count} jobs, newest first`, [
        { label: "Job", get: (j) => h("code", {}, j.job_id) },
        { label: "Kind", get: (j) => j.kind || "–" },
        { label: "Status", get: (j) => badge(j.status) },
        { label: "Session", get: (j) => (j.session_key ? h("button", { type: "button", class: "secondary", onclick: () => openSession(j.session_key) }, j.session_key) : "–") },
        { label: "Created", get: (j) => when(j.created_at_ms) },
        { label: "Updated", get: (j) => when(j.updated_at_ms) },
        { label: "Summary", get: (j) => j.summary || j.error || "" },
      ], data.items, "No background jobs."),
    );
    say(`Updated ${new Date().toLocaleTimeString()}`);
  }

  async function loadProfiles() {
    const data = await api("GET", "/admin/api/auth-profiles");
    fill(
      "profiles-table",
      table(data.active ? `Active profile: ${data.active}` : "No active profile", [
        { label: "Name", get: (p) => h("strong", {}, p.name) },
        { label: "Kind", get: (p) => p.kind },
        { label: "Created", get: (p) => when(p.created_at_ms) },
        { label: "Active", get: (p) => (p.active ? badge("active") : "–") },
        { label: "Sessions", get: (p) => (p.session_count ? `${p.session_count}: ${p.sessions.slice(0, 3).join(", ")}${p.session_count > 3 ? " …" : ""}` : "none") },
        {
          label: "Actions",
          get: (p) =>
            h("span", { class: "actions" },
              h("button", { type: "button", disabled: p.active, onclick: () => act(() => api("POST", `/admin/api/auth-profiles/${encodeURIComponent(p.name)}/activate`), `Activated ${p.name}.`), "aria-label": `Activate ${p.name}` }, "Activate"),
              h("button", { type: "button", class: "danger", disabled: p.active, onclick: () => confirm(`Delete profile ${p.name}?`) && act(() => api("DELETE", `/admin/api/auth-profiles/${encodeURIComponent(p.name)}`), `Deleted ${p.name}.`), "aria-label": `Delete ${p.name}` }, "Delete")),
        },
      ], data.profiles, "No auth profiles yet: upload an auth.json or add an API key."),
    );
    say(`Updated ${new Date().toLocaleTimeString()}`);
    loaded("profiles", {});
  }

  async function loadAuthors() {
    const data = await api("GET", withPlatform("/admin/api/github-authors"));
    fill(
      "authors-table",
      table("Mappings", [
        { label: "Platform", get: (a) => a.platform },
        { label: "User", get: (a) => h("code", {}, a.userId) },
        { label: "Name", get: (a) => a.name },
        { label: "Email", get: (a) => a.email },
        { label: "Source", get: (a) => badge(a.source) },
        {
          label: "Actions",
          get: (a) =>
            h("span", { class: "actions" },
              h("button", { type: "button", class: "secondary", onclick: () => editAuthor(a), "aria-label": `Edit ${a.userId}` }, "Edit"),
              h("button", { type: "button", class: "danger", onclick: () => confirm(`Delete mapping for ${a.userId}?`) && act(() => api("DELETE", `/admin/api/github-authors/${encodeURIComponent(a.userId)}?platform=${a.platform}`), `Deleted mapping for ${a.userId}.`), "aria-label": `Delete ${a.userId}` }, "Delete")),
        },
      ], data.items, "No GitHub author mappings yet."),
    );
    say(`Updated ${new Date().toLocaleTimeString()}`);
  }

  function editAuthor(author) {
    $("author-platform").value = author.platform;
    $("author-user").value = author.userId;
    $("author-name").value = author.name;
    $("author-email").value = author.email;
    $("author-name").focus();
  }

  // the page's helpers for the other views' scripts (deferred after this one: ops.js)
  window.cbAdmin = Object.freeze({ api, h, table });
  const LOADERS = { overview: loadOverview, sessions: loadSessions, jobs: loadJobs, profiles: loadProfiles, authors: loadAuthors, channels: () => window.cbChannels.load(api), audit: () => window.cbAudit.load(api) };
  LOADERS.usage = () => window.cbUsage.load({ api, h, fill, table, act, submit }); // usage.js

  async function load() {
    if (state.needsToken) return;
    try {
      await LOADERS[state.view]();
      if (!document.querySelector(".notice.keep")) notify("");
    } catch (error) {
      if (error instanceof ApiFailure && error.status === 401) return;
      notify(error.message || String(error));
    }
  }

  async function act(action, done) {
    try {
      await action();
      notify(done, "info keep");
      await load();
      document.querySelector(".notice")?.classList.remove("keep");
    } catch (error) {
      if (!(error instanceof ApiFailure && error.status === 401)) notify(error.message);
    }
  }

  // ---- routing -----------------------------------------------------------------------------
  function route() {
    const [view, ...rest] = location.hash.replace(/^#/, "").split("/");
    state.view = VIEWS.includes(view) ? view : "overview";
    state.selected = state.view === "sessions" && rest.length ? decodeURIComponent(rest.join("/")) : null;
    for (const name of VIEWS) $(`view-${name}`).hidden = name !== state.view;
    for (const link of document.querySelectorAll(".tabs a")) {
      if (link.dataset.view === state.view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    load();
  }

  // ---- forms -------------------------------------------------------------------------------
  function markInvalid(form, field) {
    for (const input of form.querySelectorAll("input, select")) input.removeAttribute("aria-invalid");
    if (!field) return;
    const aliases = { userId: "userId", name: "name", email: "email", apiKey: "apiKey", authJson: "file", platform: "platform" };
    const input = form.querySelector(`[name="${aliases[field] || field}"]`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }

  async function submit(form, request, done) {
    try {
      await request();
      markInvalid(form, null);
      form.reset();
      notify(done, "info keep");
      await load();
      document.querySelector(".notice")?.classList.remove("keep");
    } catch (error) {
      if (error instanceof ApiFailure && error.status === 401) return;
      markInvalid(form, error.field);
      notify(error.message);
    }
  }

  function wire() {
    $("login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      $("token").value = "";
      if (await logIn({ token })) route();
    });
    $("signout").addEventListener("click", async () => {
      try {
        await api("POST", "/admin/api/logout");
      } finally {
        showLogin("");
      }
    });
    $("refresh").addEventListener("click", load);
    $("platform").addEventListener("change", (event) => {
      state.platform = event.target.value;
      state.offset = 0;
      load();
    });
    $("sessions-prev").addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - PAGE_SIZE);
      load();
    });
    $("sessions-next").addEventListener("click", () => {
      state.offset += PAGE_SIZE;
      load();
    });
    $("session-reset").addEventListener("click", () => {
      const key = state.selected;
      if (key && confirm("Forget the Codex thread? The next message starts a fresh thread.")) {
        act(() => api("POST", `/admin/api/sessions/${encodeURIComponent(key)}/reset`), "Thread reset: the next turn starts a fresh Codex thread.");
      }
    });
    $("session-move").addEventListener("click", () => {
      const key = state.selected;
      const profile = $("session-profile").value;
      if (key && profile && confirm(`Move ${key} to auth profile ${profile}? Its next turn starts a fresh Codex thread there.`)) {
        act(() => api("POST", `/admin/api/sessions/${encodeURIComponent(key)}/auth-profile`, { profile }), `Moved to ${profile}.`);
      }
    });
    $("session-delete").addEventListener("click", () => {
      const key = state.selected;
      if (key && confirm(`Delete session ${key} and its workspace?`)) {
        act(async () => {
          await api("DELETE", `/admin/api/sessions/${encodeURIComponent(key)}`);
          location.hash = "#sessions";
        }, `Deleted ${key}.`);
      }
    });
    $("author-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.target;
      const body = Object.fromEntries(new FormData(form).entries());
      submit(form, () => api("POST", "/admin/api/github-authors", body), `Saved mapping for ${body.userId}.`);
    });
    $("profile-apikey").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.target;
      const body = { name: $("apikey-name").value.trim(), apiKey: $("apikey-key").value.trim() };
      submit(form, () => api("POST", "/admin/api/auth-profiles", body), `Added API-key profile ${body.name}.`);
    });
    $("profile-upload").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.target;
      const file = $("upload-file").files[0];
      const name = $("upload-name").value.trim();
      if (!file) return;
      submit(form, async () => api("POST", "/admin/api/auth-profiles", { name, authJson: await file.text() }), `Uploaded auth.json as ${name}.`);
    });
    window.addEventListener("hashchange", route);
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const code = takeLoginCode();
    wire();
    hideLogin();
    if (code && !(await logIn({ code }))) return;
    route();
  });
})();
