// Agents' permission requests, shown on every view and answered in place: the agent's tool
// call waits on the server until a person allows or denies it (or it times out).

import { api } from "./api.js";
import { duration, fill, h, plain, say } from "./dom.js";
import { onEvent, watchItems } from "./feed.js";

const REFRESH_ON = new Set(["permission_requested", "permission_answered", "run_finished", "permission_denied"]);

export function mountPermissions(panel) {
  let titles = new Map();
  let pending = [];

  async function reload() {
    try {
      pending = await api("/api/permissions");
    } catch {
      return; // unreachable or not allowed: the status line says so
    }
    draw();
  }

  function draw() {
    panel.hidden = pending.length === 0;
    if (!pending.length) {
      fill(panel);
      return;
    }
    const focusedId = panel.contains(document.activeElement) ? document.activeElement.dataset.request : null;
    fill(
      panel,
      h("h2", {}, pending.length === 1 ? "An agent asks for permission" : `${pending.length} agents ask for permission`),
      h("ul", { class: "requests" }, pending.map(requestRow)),
    );
    const again = focusedId && panel.querySelector(`button[data-request="${CSS.escape(focusedId)}"]`);
    if (again) again.focus();
  }

  function requestRow(request) {
    const title = titles.get(request.item_id);
    const answer = (decision) => async (e) => {
      for (const b of e.currentTarget.parentElement.querySelectorAll("button")) b.disabled = true;
      try {
        const done = await api(`/api/permissions/${encodeURIComponent(request.id)}`, { method: "POST", body: { decision } });
        say(done.rule ? `Allowed, and saved the rule ${done.rule}` : `${decision === "deny" ? "Denied" : "Allowed"} ${request.tool_name}`);
      } catch (err) {
        say(`Could not answer: ${err.message}`, "error");
      }
      reload();
    };
    const chat = request.item_id === null;  // the chat agent asks: it has no item
    const label = chat ? `${request.tool_name} for the chat agent` : `${request.tool_name} for #${request.item_id}`;
    return h(
      "li",
      { class: "request", "data-request": request.id, "data-tool": request.tool_name },
      h(
        "p",
        { class: "who" },
        chat ? "The chat agent" : h("a", { href: `#/items/${request.item_id}` }, `#${request.item_id}`, title ? ` ${title}` : ""),
        ` · run ${request.run_id} wants to use `,
        h("strong", { class: "tool-name" }, request.tool_name),
      ),
      h("pre", { class: "input" }, summary(request)),
      request.expires_at ? h("p", { class: "expires" }, `denied by itself in ${duration(request.expires_at - Date.now() / 1000)} if nobody answers`) : null,
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", class: "primary", "data-request": request.id, "data-decision": "allow", "aria-label": `Allow ${label}`, onclick: answer("allow") }, "Allow"),
        h("button", { type: "button", class: "danger", "data-request": request.id, "data-decision": "deny", "aria-label": `Deny ${label}`, onclick: answer("deny") }, "Deny"),
        h("button", { type: "button", "data-request": request.id, "data-decision": "always_allow", "aria-label": `Always allow ${label}`, onclick: answer("always_allow") }, "Always allow"),
      ),
    );
  }

  const stopItems = watchItems((items) => {
    titles = new Map(items.map((item) => [item.id, item.title]));
  });
  const stopEvents = onEvent((row) => {
    if (REFRESH_ON.has(row.kind)) reload();
  });
  reload();
  return () => {
    stopItems();
    stopEvents();
  };
}

/** The tool's input as people read it: the command for Bash, the path for file tools, else JSON. */
function summary(request) {
  const input = request.input || {};
  if (typeof input.command === "string") return plain(input.command);
  if (typeof input.file_path === "string") return plain(input.file_path);
  return plain(JSON.stringify(input, null, 2));
}
