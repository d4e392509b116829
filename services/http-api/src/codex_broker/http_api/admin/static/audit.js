// The Audit tab: search the audit trail by user, thread, kind and time; export what matches as
// JSONL. Loaded beside admin.js, which calls window.cbAudit.load(api) when the tab is shown.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    return td;
  }

  function toMs(value) {
    if (!value) return "";
    const ms = new Date(value).getTime();
    return Number.isFinite(ms) && ms >= 0 ? String(ms) : "";
  }

  function filters() {
    const params = new URLSearchParams();
    const fields = { user: $("audit-user").value.trim(), thread: $("audit-thread").value.trim(), kind: $("audit-kind").value };
    for (const [name, value] of Object.entries(fields)) if (value) params.set(name, value);
    const since = toMs($("audit-since").value);
    const until = toMs($("audit-until").value);
    if (since) params.set("since", since);
    if (until) params.set("until", until);
    return params;
  }

  function what(record) {
    if (record.kind === "command") return `${record.summary} → exit ${record.exit_code ?? "?"}`;
    return [record.action, record.summary].filter(Boolean).join(": ");
  }

  function render(items) {
    const body = $("audit-rows");
    body.replaceChildren(
      ...items.map((r) => {
        const tr = document.createElement("tr");
        tr.append(
          cell(new Date(r.at_ms).toISOString().replace("T", " ").slice(0, 19)),
          cell(r.kind),
          cell(r.actor_name && r.actor_name !== r.actor ? `${r.actor_name} (${r.actor})` : r.actor),
          cell(r.session_key),
          cell(what(r)),
        );
        return tr;
      }),
    );
    $("audit-count").textContent = items.length ? `${items.length} record(s), newest first` : "No records match.";
  }

  let callApi = null; // admin.js's api(): the cookie session, sign-in on 401, errors with a field

  async function load(api) {
    if (api) callApi = api;
    const params = filters();
    $("audit-export").href = `/admin/api/audit/export?${params}`;
    for (const input of $("audit-form").querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    try {
      render((await callApi("GET", `/admin/api/audit?${params}`)).items || []);
    } catch (error) {
      const field = error.field ? $(`audit-${error.field}`) : null;
      if (field) field.setAttribute("aria-invalid", "true");
      throw error;
    }
  }

  function wire() {
    $("audit-form").addEventListener("submit", (event) => {
      event.preventDefault();
      if (!callApi) return;
      load().catch((error) => {
        if (error.status === 401) return;
        const notice = $("notice");
        notice.textContent = error.message;
        notice.hidden = false;
      });
    });
  }

  window.cbAudit = { load };
  document.addEventListener("DOMContentLoaded", wire);
})();
