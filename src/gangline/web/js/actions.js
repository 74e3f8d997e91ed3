// A person's actions on an item, as buttons. Which ones apply comes from the server
// (`item.actions`, read off the stage table), so the page never second-guesses the pipeline.

import { api } from "./api.js";
import { h, say } from "./dom.js";

const LABELS = {
  start: "Start", stop: "Stop", block: "Block", unblock: "Unblock", approve: "Approve", reject: "Reject",
  demote: "Demote", archive: "Archive", hold: "Hold", release: "Release", freeze: "Freeze",
  unfreeze: "Unfreeze", "retry-merge": "Retry merge", close: "Close", abandon: "Abandon", supersede: "Supersede",
};
// On a card: the ones a person reaches for; the item view shows them all.
const CARD = ["start", "stop", "block", "unblock", "approve", "reject", "demote", "archive", "retry-merge", "close"];
// These ask why: the reason is recorded, and a rejection's is the coder's next prompt.
const ASK_WHY = {
  reject: "What should the coder change?", block: "Why block it? (optional)", stop: "Why stop it? (optional)",
  abandon: "Why abandon it? (optional)", supersede: "Why? (optional)",
};
const DANGER = new Set(["stop", "block", "reject", "demote", "abandon", "supersede"]);

/** The actions to offer: `stop` replaces `block` while an agent is working on the item. */
export function offered(item, where = "card") {
  const running = item.activity && item.activity.run_id && ["running", "throttled"].includes(item.activity.state);
  const names = [];
  for (const name of item.actions || []) {
    if (name === "stop" && !running) continue;
    if (name === "block" && running) continue;
    if (where === "card" && !CARD.includes(name)) continue;
    names.push(name);
  }
  return names;
}

export function actionButtons(item, where = "card") {
  return offered(item, where).map((name) =>
    h(
      "button",
      {
        type: "button",
        class: `act${DANGER.has(name) ? " danger" : ""}`,
        "data-action": name,
        "aria-label": `${LABELS[name] || name} #${item.id} ${item.title}`,
        title: `${LABELS[name] || name} #${item.id}`,
        onclick: (e) => {
          e.stopPropagation();
          act(item, name, e.currentTarget);
        },
      },
      LABELS[name] || name,
    ),
  );
}

export async function act(item, name, button = null) {
  let reason;
  let by = null;
  if (name === "supersede") {
    const given = await askReason(`Supersede #${item.id}`, "Which item does this one's work instead? (its number)", true);
    if (given === null) return null;
    by = Number(given.replace(/^#/, ""));
  }
  if (ASK_WHY[name]) {
    reason = await askReason(`${LABELS[name]} #${item.id}`, ASK_WHY[name], name === "reject");
    if (reason === null) return null;
  }
  if (button) button.disabled = true;
  try {
    const body = { ...(reason ? { reason } : {}), ...(by !== null ? { by } : {}) };
    const updated = await api(`/api/items/${item.id}/${name}`, { method: "POST", body });
    say(`#${item.id}: ${LABELS[name] || name} done`);
    window.dispatchEvent(new CustomEvent("gangline:item", { detail: updated }));
    return updated;
  } catch (err) {
    say(`#${item.id}: ${LABELS[name] || name} refused: ${err.message}`, "error");
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

/** A small modal asking for a reason; resolves to the text, or null when cancelled. */
export function askReason(title, question, required) {
  const dialog = document.getElementById("dialog");
  return new Promise((resolve) => {
    const text = h("textarea", { id: "reason", rows: 4, required: required || null });
    const form = h(
      "form",
      { method: "dialog", class: "reason" },
      h("h2", {}, title),
      h("label", { for: "reason" }, question),
      text,
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", value: "cancel", onclick: () => dialog.close("cancel") }, "Cancel"),
        h("button", { type: "submit", value: "ok", class: "primary" }, "OK"),
      ),
    );
    dialog.replaceChildren(form);
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "ok" ? text.value.trim() : null),
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    text.focus();
  });
}
