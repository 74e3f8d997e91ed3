// Building the page without ever parsing markup: every string goes in as a text node or an
// attribute value, so an item title or an agent's output that contains HTML stays inert.

/**
 * h("button", {class: "act", onclick: fn, "aria-label": "Start"}, "Start")
 * Attributes: `class`, `on<event>` (a function), the properties `value`, `checked`, `disabled`,
 * `hidden`, `open`, `selected` (set as properties), anything else with setAttribute (null or
 * false leaves it out). Children: nodes, strings and numbers (as text), arrays; null and false
 * are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = tag.includes(":")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(tag.indexOf(":") + 1))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (PROPERTIES.has(name)) {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** An SVG element: svg("rect", {x: 0, ...}). */
export function svg(tag, attrs = {}, ...children) {
  return h(`svg:${tag}`, attrs, ...children);
}

const PROPERTIES = new Set(["value", "checked", "disabled", "hidden", "open", "selected"]);

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace everything inside `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function money(usd) {
  if (!usd) return "$0";
  if (usd < 0.01) return `$${usd.toFixed(4)}`;
  return `$${usd.toFixed(2)}`;
}

/** Seconds since the epoch as a local date and time, to the second. */
export function when(epochS) {
  if (epochS === null || epochS === undefined) return "";
  return new Date(epochS * 1000).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

/** Seconds since the epoch as a local time of day, for something later today. */
export function clock(epochS) {
  return new Date(epochS * 1000).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

/** A span of seconds for people: 45s, 3m 05s, 2h 10m. */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function tokens(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${Math.round(n / 1e3)}k`;
  return String(n);
}

export const STAGES = ["backlog", "coding", "qa", "merge", "done", "archived"];
export const STAGE_LABELS = {
  backlog: "Backlog", coding: "Coding", qa: "QA", merge: "Merge", done: "Done", archived: "Archived",
};
export const HOLD_LABELS = { blocked: "Blocked", review_hold: "Review hold", merge_failure: "Merge failure" };

/** Announce something to screen readers (and show it briefly): the page's one live region. */
export function say(text, kind = "info") {
  const region = document.getElementById("toast");
  if (!region) return;
  const note = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : null }, text);
  region.append(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 4000);
}

// Terminal control sequences (CSI, OSC, other ESC forms) and C0/C1 control characters but
// tab and newline: text from agents and commands is shown as what it says, not what it does.
const CONTROL = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|\u001b[@-Z\\-_]|[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

export function plain(text) {
  return String(text ?? "").replace(CONTROL, "");
}
