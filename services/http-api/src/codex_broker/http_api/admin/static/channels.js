// The Channels tab: per-channel defaults (repo of the repos cache, model, sandbox, and what a
// thread may pick). Loaded beside admin.js, which calls window.cbChannels.load(api) on the tab.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  let callApi = null; // admin.js's api(): the cookie session, sign-in on 401, errors with a field

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    return td;
  }

  function row(item) {
    const tr = document.createElement("tr");
    const repos = Object.entries(item.repos || {}).map(([name, url]) => (url ? `${name} ← ${url}` : name));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete defaults of ${item.platform}:${item.conversationId}`);
    remove.addEventListener("click", () => {
      if (!confirm(`Delete the defaults of ${item.platform}:${item.conversationId}?`)) return;
      const path = `/admin/api/channel-defaults/${encodeURIComponent(item.conversationId)}?platform=${item.platform}`;
      callApi("DELETE", path).then(() => load(), report);
    });
    const actions = document.createElement("td");
    actions.append(remove);
    tr.append(
      cell(`${item.platform}:${item.conversationId}`),
      cell(item.repo || ""),
      cell(repos.join(", ")),
      cell(item.model || ""),
      cell((item.models || []).join(", ")),
      cell(item.sandbox || ""),
      actions,
    );
    return tr;
  }

  function report(error) {
    if (error.status === 401) return;
    const field = error.field ? document.querySelector(`#channel-form [name="${error.field}"]`) : null;
    if (field) {
      field.setAttribute("aria-invalid", "true");
      field.focus();
    }
    const notice = $("notice");
    notice.textContent = error.message;
    notice.hidden = false;
  }

  async function load(api) {
    if (api) callApi = api;
    const data = await callApi("GET", "/admin/api/channel-defaults");
    $("channel-rows").replaceChildren(...data.items.map(row));
    $("channel-count").textContent = data.items.length ? `${data.items.length} channel(s) with defaults` : "No channel has defaults.";
  }

  function body(form) {
    const value = (name) => form.elements[name].value.trim();
    const repos = {};
    for (const line of value("repos").split("\n")) {
      const [name, url] = line.trim().split(/\s+/, 2);
      if (name) repos[name] = url || "";
    }
    const models = value("models").split(",").map((m) => m.trim()).filter(Boolean);
    return {
      platform: value("platform"),
      conversationId: value("conversationId"),
      repo: value("repo"),
      repos,
      model: value("model"),
      models,
      sandbox: value("sandbox"),
    };
  }

  function wire() {
    $("channel-form").addEventListener("submit", (event) => {
      event.preventDefault();
      if (!callApi) return;
      const form = event.target;
      for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
      const sent = body(form);
      callApi("PUT", "/admin/api/channel-defaults", sent)
        .then(() => {
          form.reset();
          $("notice").hidden = true;
          $("channel-count").textContent = `Saved the defaults of ${sent.platform}:${sent.conversationId}.`;
          return load();
        })
        .catch(report);
    });
  }

  window.cbChannels = { load };
  document.addEventListener("DOMContentLoaded", wire);
})();
