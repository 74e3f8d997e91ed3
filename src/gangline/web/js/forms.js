// Adding and editing a work item in the shared dialog. The server validates (ItemDraft and
// ItemPatch in items.py); when it refuses, its message goes next to the field it names and
// everything the person typed stays where it was.

import { api } from "./api.js";
import { h, say } from "./dom.js";

const KINDS = [
  ["story", "Story"],
  ["bug", "Bug"],
  ["spike", "Spike"],
  ["refactor", "Refactor"],
];
const QA_MODES = [
  ["default", "Project default"],
  ["server", "Server: gates only"],
  ["agent", "Agent reviews"],
  ["human", "Human reviews"],
];
const MAX_TITLE = 200;
const MAX_CRITERION = 2000;
const PRIORITY_MIN = -1000;
const PRIORITY_MAX = 1000;
const ID = "item-form";

let opened = 0;

/**
 * Open the item form: a new item when `item` is null, else an edit of it. Resolves to the
 * created or saved item, or null when cancelled.
 */
export function openItemForm(item = null) {
  const dialog = document.getElementById("dialog");
  if (!dialog) return Promise.resolve(null);
  if (dialog.open) dialog.close("cancel");
  const editing = Boolean(item && item.id);
  const uid = `${ID}-${(opened += 1)}`;
  const returnTo = document.activeElement;

  return new Promise((resolve) => {
    let saved = null;
    let busy = false;

    // --- fields ---
    const field = (name) => `${uid}-${name}`;
    const kind = h(
      "select",
      { id: field("kind"), name: "kind" },
      KINDS.map(([value, label]) => h("option", { value, selected: (item?.kind || "story") === value }, label)),
    );
    const title = h("input", {
      id: field("title"), name: "title", type: "text", required: true, maxlength: MAX_TITLE,
      autocomplete: "off", value: item?.title ?? "", "aria-describedby": field("title-help"),
    });
    const body = h("textarea", {
      id: field("body"), name: "body", rows: 8, value: item?.body ?? "", "aria-describedby": field("body-help"),
    });
    const priority = h("input", {
      id: field("priority"), name: "priority", type: "number", inputmode: "numeric", step: 1,
      min: PRIORITY_MIN, max: PRIORITY_MAX, value: String(item?.priority ?? 0), "aria-describedby": field("priority-help"),
    });
    const dependsOn = h("input", {
      id: field("depends_on"), name: "depends_on", type: "text", inputmode: "numeric", autocomplete: "off",
      value: (item?.depends_on || []).join(", "), "aria-describedby": field("depends_on-help"),
    });
    const pinned = h("input", {
      id: field("pinned_agent"), name: "pinned_agent", type: "text", autocomplete: "off", maxlength: 64,
      spellcheck: "false", value: item?.pinned_agent ?? "", "aria-describedby": field("pinned_agent-help"),
    });
    const qaMode = h(
      "select",
      { id: field("qa_mode"), name: "qa_mode" },
      QA_MODES.map(([value, label]) => h("option", { value, selected: (item?.qa_mode || "default") === value }, label)),
    );
    const startAfter = editing
      ? null
      : h("input", {
          id: field("start_after"), name: "start_after", type: "datetime-local", step: 60,
          "aria-describedby": field("start_after-help"),
        });

    // --- the criteria list editor ---
    const criteriaList = h("ol", { class: "criteria-list", id: field("criteria-list") });
    const criteriaHelp = h("p", { class: "help", id: field("criteria-help") }, "One line each; empty ones are left out.");
    const rows = []; // {row, input, original: {text, checked} | null}
    let criterionSeq = 0;

    function renumber() {
      rows.forEach((r, i) => {
        r.label.textContent = `Criterion ${i + 1}`;
        r.remove.setAttribute("aria-label", `Remove criterion ${i + 1}`);
      });
      criteriaList.hidden = rows.length === 0;
    }

    function addCriterion(original = null, after = null) {
      criterionSeq += 1;
      const id = field(`criterion-${criterionSeq}`);
      const input = h("input", {
        id, name: "criterion", type: "text", maxlength: MAX_CRITERION, autocomplete: "off",
        value: original ? original.text : "", "aria-describedby": field("criteria-help"),
      });
      const label = h("label", { for: id, class: "criterion-label" }, "Criterion");
      const met = original && original.checked
        ? h("span", { class: "criterion-met", title: "Checked as met; rewording it clears the check" }, "met")
        : null;
      const entry = { input, label, original, row: null, remove: null };
      entry.remove = h(
        "button",
        { type: "button", class: "criterion-remove", title: "Remove this criterion", onclick: () => removeCriterion(entry) },
        "Remove",
      );
      entry.row = h(
        "li",
        { class: "criterion" },
        label,
        h(
          "div",
          { class: "criterion-line" },
          input,
          met,
          entry.remove,
        ),
      );
      input.addEventListener("input", () => {
        clearError(input);
        // A reworded criterion has to be met again; the mark says so as soon as it is reworded.
        if (met) met.hidden = input.value.trim() !== original.text.trim();
      });
      const at = after ? rows.indexOf(after) + 1 : rows.length;
      rows.splice(at, 0, entry);
      if (at < rows.length - 1) criteriaList.insertBefore(entry.row, rows[at + 1].row);
      else criteriaList.append(entry.row);
      renumber();
      return entry;
    }

    function removeCriterion(entry) {
      const at = rows.indexOf(entry);
      if (at < 0) return;
      clearError(entry.input);
      rows.splice(at, 1);
      entry.row.remove();
      renumber();
      // Keep the keyboard where it was: on the next criterion, else the previous, else "Add".
      const next = rows[at] || rows[at - 1];
      (next ? next.input : addButton).focus();
      say(`Removed criterion ${at + 1}`);
    }

    const addButton = h(
      "button",
      {
        type: "button", class: "criterion-add",
        onclick: () => addCriterion().input.focus(),
      },
      "Add criterion",
    );
    for (const c of item?.criteria || []) {
      addCriterion(typeof c === "string" ? { text: c, checked: false } : { text: c.text, checked: Boolean(c.checked) });
    }
    if (!rows.length) addCriterion(); // one empty line to type the first into; empty lines are not sent
    renumber();

    // --- the form ---
    const formError = h("p", { class: "form-error", role: "alert", hidden: true });
    const submit = h("button", { type: "submit", class: "primary" }, editing ? "Save" : "Add item");
    const headingId = field("heading");
    const form = h(
      "form",
      { class: "item-form", novalidate: true, "aria-labelledby": headingId },
      h("h2", { id: headingId }, editing ? `Edit #${item.id}` : "New item"),
      formError,
      group("title", "Title", title, `One line, up to ${MAX_TITLE} characters.`),
      h(
        "div",
        { class: "form-row form-row-split" },
        group("kind", "Kind", kind),
        group("priority", "Priority", priority, `Higher runs first, ${PRIORITY_MIN} to ${PRIORITY_MAX}; 0 is the usual.`),
      ),
      group("body", "Description", body, "Markdown; what the coder should know."),
      h(
        "fieldset",
        { class: "criteria", "aria-describedby": field("criteria-help") },
        h("legend", {}, "Acceptance criteria"),
        criteriaHelp,
        criteriaList,
        addButton,
      ),
      group("depends_on", "Depends on", dependsOn, "Item ids separated by commas, e.g. 3, 7. It starts after they are done."),
      h(
        "div",
        { class: "form-row form-row-split" },
        group("pinned_agent", "Pinned agent", pinned, "An agent profile name; empty for the default."),
        group("qa_mode", "QA mode", qaMode, "Who checks the work before it merges."),
      ),
      startAfter
        ? group("start_after", "Start after", startAfter, "Optional: start it by itself at this local time.")
        : null,
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", value: "cancel", onclick: () => dialog.close("cancel") }, "Cancel"),
        submit,
      ),
    );

    function group(name, text, control, help = null) {
      const helpId = field(`${name}-help`);
      return h(
        "div",
        { class: `field field-${name}` },
        h("label", { for: control.id }, text),
        control,
        help ? h("p", { class: "help", id: helpId }, help) : null,
      );
    }

    for (const control of [kind, title, body, priority, dependsOn, pinned, qaMode, startAfter]) {
      if (!control) continue;
      control.addEventListener(control.tagName === "SELECT" ? "change" : "input", () => clearError(control));
    }

    // --- errors shown at their field ---
    const errors = new Map(); // control -> error element

    function showError(control, fieldName, message) {
      clearError(control);
      const errId = `${control.id}-error`;
      const el = h("p", { class: "field-error", id: errId, "data-field": fieldName }, message);
      const anchor = control.closest(".criterion") || control.closest(".field") || control.closest("fieldset") || form;
      if (control === addButton) anchor.insertBefore(el, addButton);
      else if (anchor === form) formError.after(el);
      else anchor.append(el);
      if (control !== addButton) control.setAttribute("aria-invalid", "true");
      const described = (control.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
      control.setAttribute("aria-describedby", [errId, ...described.filter((d) => d !== errId)].join(" "));
      errors.set(control, el);
      control.focus();
    }

    function clearError(control) {
      const el = errors.get(control);
      if (!el) return;
      el.remove();
      errors.delete(control);
      control.removeAttribute("aria-invalid");
      const described = (control.getAttribute("aria-describedby") || "").split(/\s+/).filter((d) => d && d !== el.id);
      if (described.length) control.setAttribute("aria-describedby", described.join(" "));
      else control.removeAttribute("aria-describedby");
    }

    function clearAll() {
      for (const control of [...errors.keys()]) clearError(control);
      formError.hidden = true;
      formError.textContent = "";
    }

    function showFormError(message) {
      formError.textContent = message;
      formError.hidden = false;
    }

    const CONTROLS = {
      kind, title, body, priority, depends_on: dependsOn, pinned_agent: pinned, qa_mode: qaMode, start_after: startAfter,
    };

    /** Put a server error at the field it names; `sent` maps criteria[i] back to its input. */
    function place(err, sent) {
      const name = err.field || "";
      const criterion = /^criteria\[(\d+)\]/.exec(name);
      if (criterion) {
        const entry = sent[Number(criterion[1])];
        if (entry) return showError(entry.input, name, err.message);
      }
      const base = name.replace(/[.[].*$/, "");
      if (base === "criteria" || base === "criterion") return showError(addButton, name, err.message);
      const control = CONTROLS[base];
      if (control) return showError(control, base, err.message);
      showFormError(err.message);
      submit.focus();
    }

    // --- reading the form ---
    function readCriteria() {
      const sent = [];
      const out = [];
      for (const entry of rows) {
        const text = entry.input.value.trim();
        if (!text) continue;
        // An unchanged criterion keeps its check; a reworded one has to be met again.
        const checked = Boolean(entry.original && entry.original.checked && entry.original.text.trim() === text);
        out.push({ text, checked });
        sent.push(entry);
      }
      return { criteria: out, sent };
    }

    function readDependsOn() {
      const text = dependsOn.value.trim();
      if (!text) return [];
      const ids = [];
      for (const part of text.split(/[\s,]+/)) {
        if (!part) continue;
        const m = /^#?(\d+)$/.exec(part);
        if (!m || Number(m[1]) < 1 || !Number.isSafeInteger(Number(m[1]))) {
          throw new FieldProblem(dependsOn, "depends_on", `"${part}" is not an item id: write ids like 3, 7`);
        }
        ids.push(Number(m[1]));
      }
      return ids;
    }

    function readPriority() {
      const text = priority.value.trim();
      if (text === "") {
        // A number input reports "" for text it cannot read as a number.
        if (priority.validity && priority.validity.badInput) {
          throw new FieldProblem(priority, "priority", "the priority must be a whole number");
        }
        return 0;
      }
      const n = Number(text);
      if (!Number.isInteger(n)) throw new FieldProblem(priority, "priority", "the priority must be a whole number");
      return n;
    }

    function readStartAfter() {
      if (!startAfter || !startAfter.value) return null;
      const at = new Date(startAfter.value); // a datetime-local value is read as local time
      if (Number.isNaN(at.getTime())) {
        throw new FieldProblem(startAfter, "start_after", "the start time is not a date and time");
      }
      return isoWithOffset(at);
    }

    function draft() {
      const { criteria, sent } = readCriteria();
      const out = {
        kind: kind.value,
        title: title.value,
        body: body.value,
        criteria: criteria.map((c) => c.text),
        depends_on: readDependsOn(),
        priority: readPriority(),
        pinned_agent: pinned.value.trim() || null,
        qa_mode: qaMode.value === "default" ? null : qaMode.value,
      };
      const when = readStartAfter();
      if (when) out.start_after = when;
      return { body: out, sent };
    }

    function patch() {
      const { criteria, sent } = readCriteria();
      const out = {};
      const clear = [];
      if (kind.value !== item.kind) out.kind = kind.value;
      if (title.value !== item.title) out.title = title.value;
      if (body.value !== (item.body ?? "")) out.body = body.value;
      const before = (item.criteria || []).map((c) =>
        typeof c === "string" ? { text: c, checked: false } : { text: c.text, checked: Boolean(c.checked) },
      );
      if (JSON.stringify(criteria) !== JSON.stringify(before)) out.criteria = criteria;
      const deps = readDependsOn();
      if (JSON.stringify(deps) !== JSON.stringify(item.depends_on || [])) out.depends_on = deps;
      const prio = readPriority();
      if (prio !== item.priority) out.priority = prio;
      const agent = pinned.value.trim() || null;
      if (agent !== (item.pinned_agent ?? null)) {
        if (agent === null) clear.push("pinned_agent");
        else out.pinned_agent = agent;
      }
      const qa = qaMode.value === "default" ? null : qaMode.value;
      if (qa !== (item.qa_mode ?? null)) {
        if (qa === null) clear.push("qa_mode");
        else out.qa_mode = qa;
      }
      if (clear.length) out.clear = clear;
      return { body: out, sent };
    }

    // --- submitting ---
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (busy) return;
      clearAll();
      let request;
      try {
        request = editing ? patch() : draft();
      } catch (err) {
        if (err instanceof FieldProblem) {
          showError(err.control, err.field, err.message);
          return;
        }
        throw err;
      }
      if (editing && Object.keys(request.body).length === 0) {
        saved = item;
        dialog.close("saved");
        say(`No changes to #${item.id}`);
        return;
      }
      busy = true;
      submit.disabled = true;
      form.setAttribute("aria-busy", "true");
      try {
        const result = editing
          ? await api(`/api/items/${item.id}`, { method: "PATCH", body: request.body })
          : await api("/api/items", { method: "POST", body: request.body });
        saved = result;
        dialog.close("saved");
        say(editing ? `Saved #${result.id}` : `Added #${result.id}`);
        window.dispatchEvent(new CustomEvent("gangline:item", { detail: result }));
      } catch (err) {
        if (err.name === "AbortError") return;
        if (err.status === 422) place(err, request.sent);
        else {
          showFormError(`${editing ? "Could not save" : "Could not add"} the item: ${err.message}`);
          submit.focus();
        }
      } finally {
        busy = false;
        submit.disabled = false;
        form.removeAttribute("aria-busy");
      }
    });

    dialog.addEventListener(
      "close",
      () => {
        dialog.removeAttribute("aria-labelledby");
        dialog.classList.remove("item-dialog");
        if (returnTo && returnTo.isConnected && typeof returnTo.focus === "function") returnTo.focus();
        resolve(saved);
      },
      { once: true },
    );
    dialog.replaceChildren(form);
    dialog.classList.add("item-dialog");
    dialog.setAttribute("aria-labelledby", headingId);
    dialog.returnValue = "";
    dialog.showModal();
    title.focus();
    if (editing) title.select();
  });
}

/** A problem found before asking the server, placed like the server's. */
class FieldProblem extends Error {
  constructor(control, field, message) {
    super(message);
    this.control = control;
    this.field = field;
  }
}

/** `2025-03-05T14:30:00+01:00`: the local time with its offset, which the server requires. */
function isoWithOffset(date) {
  const pad = (n) => String(Math.abs(n)).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`
  );
}
