// codex-broker admin page, rollout section: the release mix (flagged when live instances run
// different versions), the runners with a Drain button, a session's transcript and its web-chat
// link, and each auth profile's Codex account. Drawn when admin.js says a view has loaded
// ("admin:loaded"); values are inserted as text only.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  // admin.js's own helpers (it loads first): one way to call the API and to build the page
  const { api, h, table } = window.cbAdmin;

  function note(id, text, kind) {
    const el = $(id);
    if (el) {
      el.textContent = text;
      el.className = `notice ${kind || "info"}`;
      el.hidden = !text;
    }
  }

  // ---- overview: versions and runners --------------------------------------------------------
  async function drawRelease() {
    const box = $("ops-release");
    if (!box) return;
    const data = await api("GET", "/admin/api/ops/release");
    const versions = Object.entries(data.versions);
    const banner = data.mixed
      ? h("p", { id: "ops-mixed", class: "notice", role: "alert" },
        `Mixed versions: ${versions.length} releases are running (a rollout in progress or stuck) — `,
        versions.map(([v, who]) => `${v}: ${who.join(", ")}`).join("; "))
      : h("p", { id: "ops-versions", class: "muted" }, versions.length ? `Version ${versions[0][0]} everywhere.` : "");
    const runners = data.runners.length
      ? table("Runners (Drain: stop claiming, finish or hand over the turns, exit; the supervisor starts a fresh one)", [
        { label: "Runner", get: (r) => h("code", {}, r.instance) },
        { label: "Version", get: (r) => r.version },
        { label: "Turns", get: (r) => (r.capacity !== null && r.capacity !== undefined ? `${r.active ?? 0}/${r.capacity}` : "–") },
        { label: "State", get: (r) => (r.draining ? "draining" : "serving") },
        { label: "", get: (r) => h("button", { type: "button", class: "danger", disabled: r.draining, "aria-label": `Drain ${r.instance}`, onclick: () => drain(r.instance) }, "Drain") },
      ], data.runners)
      : null;
    box.replaceChildren(h("h3", {}, "Release"), banner, runners || "", h("div", { id: "ops-release-note", role: "status", hidden: true }));
  }

  async function drain(instance) {
    if (!confirm(`Drain ${instance}? It stops taking turns, finishes or hands over the running ones, and exits.`)) return;
    try {
      const sent = await api("POST", `/admin/api/ops/runners/${encodeURIComponent(instance)}/drain`);
      note("ops-release-note", `Draining ${instance} (${sent.active ?? 0} turns running); it exits when they are done or handed over.`);
    } catch (error) {
      note("ops-release-note", `Drain refused: ${error.message}`, "");
    }
  }

  // ---- session: web-chat link and transcript -------------------------------------------------
  async function drawSession(session) {
    const box = $("ops-session");
    if (!box) return;
    const data = await api("GET", `/admin/api/ops/transcript/${encodeURIComponent(session.session_key)}`);
    const link = data.web_chat_url
      ? h("p", {}, h("a", { href: data.web_chat_url, target: "_blank", rel: "noopener noreferrer", id: "ops-web-link" }, "Open in the web chat"))
      : null;
    const source = data.source === "timeline" ? " (from the session's events; long messages are cut)" : "";
    const items = data.messages.map((m) =>
      h("li", { class: `say ${m.role}` },
        h("span", { class: "when" }, m.at_ms ? new Date(Number(m.at_ms)).toLocaleString() : "–"),
        h("span", { class: "kind" }, m.author || (m.role === "codex" ? "Codex" : "user")),
        h("span", {}, m.text),
        m.files && m.files.length ? h("span", { class: "muted" }, ` [${m.files.join(", ")}]`) : null),
    );
    box.replaceChildren(
      link || "",
      h("h4", {}, "Transcript ", h("span", { class: "muted" }, `read-only${source}`)),
      h("ol", { id: "ops-transcript", class: "timeline" }, items.length ? items : [h("li", { class: "empty" }, "Nothing said yet.")]),
    );
  }

  // ---- auth profiles: the Codex account each one logs in as ------------------------------------
  // On request only: each profile costs a short-lived app-server, and an API key is tried on the API.
  function drawAccounts() {
    const box = $("ops-profiles");
    if (!box || box.dataset.drawn) return Promise.resolve();
    box.dataset.drawn = "1";
    const button = h("button", { type: "button", onclick: () => checkAccounts(button) }, "Check Codex accounts");
    box.replaceChildren(h("h3", {}, "Codex accounts"), button, h("div", { id: "ops-accounts" }));
    return Promise.resolve();
  }

  async function checkAccounts(button) {
    button.disabled = true;
    $("ops-accounts").replaceChildren(h("p", { class: "muted", role: "status" }, "Asking Codex for each profile's account…"));
    try {
      const data = await api("GET", "/admin/api/ops/accounts");
      $("ops-accounts").replaceChildren(
        table("What Codex's app-server reports per profile (account/read)", [
          { label: "Profile", get: (a) => a.profile },
          { label: "Result", get: (a) => h("span", { class: `badge ${a.ok ? "ok" : "failed"}` }, a.ok ? "ok" : "fail") },
          { label: "Account", get: (a) => a.who },
          { label: "Plan", get: (a) => a.plan },
          { label: "Rate limits", get: (a) => a.rate_limits },
          { label: "Detail", get: (a) => a.error },
        ], data.accounts),
      );
    } catch (error) {
      $("ops-accounts").replaceChildren(h("p", { role: "alert" }, `Account check failed: ${error.message}`));
    } finally {
      button.disabled = false;
    }
  }

  const DRAW = { overview: drawRelease, session: (d) => drawSession(d.session), profiles: drawAccounts };

  document.addEventListener("admin:loaded", (event) => {
    const draw = DRAW[event.detail.view];
    if (draw) draw(event.detail).catch((error) => note("notice", `Rollout section: ${error.message}`, ""));
  });
})();
