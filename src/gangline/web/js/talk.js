// Talking to an item's coder from its page: what people said so far (and which run took it), a
// form to say more, and comments on lines of the diff that go with the next message
// (GET/POST /api/items/{id}/messages). A live run takes a message at once, in the same session;
// an item in QA goes back to its coder for it.

import { api } from "./api.js";
import { clock, fill, h, plain, say } from "./dom.js";

const CLOSED = new Set(["done", "archived"]);

/** The panel in `slot` for item `id`; `commentOn(path, line, after)` starts a comment under a diff line. */
export function mountTalk(slot, id) {
  const pending = []; // [{path, line, text}] waiting to be sent
  let item = null;
  let said = [];
  let disposed = false;
  const text = h("textarea", { id: "talk-text", rows: 3, placeholder: "Also handle the empty case…" });
  const send = h("button", { type: "submit", class: "primary" }, "Send to the coder");
  const form = h(
    "form",
    { class: "talk-form" },
    h("label", { for: "talk-text" }, "Tell the coder"),
    text,
    h("div", { class: "talk-pending", "aria-live": "polite" }),
    h("div", { class: "buttons" }, send),
  );
  const list = h("ol", { class: "talk-list" });
  const closedNote = h("p", { class: "hint", hidden: true }, "This item is merged: add a new item for more work.");
  fill(slot, list, closedNote, form);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!text.value.trim() && !pending.length) {
      say("Write something, or comment on a line of the diff, first.", "error");
      text.focus();
      return;
    }
    send.disabled = true;
    try {
      await api(`/api/items/${id}/messages`, { method: "POST", body: { text: text.value, comments: pending } });
      say(`Told #${id}'s coder; its next run takes it.`);
      text.value = "";
      pending.length = 0;
      for (const marker of document.querySelectorAll(".line-comment.pending")) marker.remove();
      drawPending();
      refresh();
    } catch (err) {
      say(`Could not send it: ${err.message}`, "error");
    } finally {
      send.disabled = false;
    }
  });

  async function refresh(fresh) {
    if (fresh) item = fresh;
    try {
      said = await api(`/api/items/${id}/messages`);
    } catch {
      return; // the item view says when the server is unreachable
    }
    if (disposed) return;
    fill(list, said.map(messageRow));
    const closed = item && CLOSED.has(item.stage);
    form.hidden = closed;
    closedNote.hidden = !closed;
    slot.dataset.ready = "true"; // for tests: drawn from what the server said
  }

  function drawPending() {
    const box = form.querySelector(".talk-pending");
    if (!pending.length) return fill(box);
    fill(
      box,
      h("p", {}, `${pending.length} comment${pending.length === 1 ? "" : "s"} on the diff go with this message:`),
      h("ul", {}, pending.map((c) => h("li", {}, h("code", {}, `${plain(c.path)}:${c.line}`), ` ${plain(c.text)}`))),
    );
  }

  /** A small form under diff line `after` for a comment on `path` line `line`. */
  function commentOn(path, line, after) {
    if (item && CLOSED.has(item.stage)) return say("This item is merged: its coder takes no more comments.", "error");
    const input = h("input", { type: "text", "aria-label": `Your comment on ${path} line ${line}` });
    const box = h(
      "form",
      { class: "line-comment editing" },
      input,
      h("button", { type: "submit" }, "Add comment"),
      h("button", { type: "button", onclick: () => box.remove() }, "Cancel"),
    );
    box.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!input.value.trim()) return box.remove();
      pending.push({ path, line, text: input.value.trim() });
      box.replaceWith(h("span", { class: "line-comment pending" }, `Your comment: ${input.value.trim()}`));
      drawPending();
      text.focus();
    });
    after.after(box);
    input.focus();
  }

  refresh();
  return {
    refresh,
    commentOn,
    dispose() {
      disposed = true;
    },
  };
}

function messageRow(message) {
  const taken = message.run_id ? `taken by run ${message.run_id}` : "waiting for the coder's next run";
  return h(
    "li",
    { class: "talk-message", "data-taken": message.run_id ? "true" : "false" },
    h("p", { class: "who" }, h("strong", {}, plain(message.actor)), ` at ${clock(message.created_at)} · ${taken}`),
    message.text ? h("p", { class: "said" }, plain(message.text)) : null,
    message.comments.length
      ? h("ul", { class: "comments" }, message.comments.map((c) => h("li", {}, h("code", {}, `${plain(c.path)}:${c.line}`), ` ${plain(c.text)}`)))
      : null,
  );
}
