// What an item is doing (the server's `activity`), as one line: the board's cards and the item
// view say it the same way.

import { clock, duration, h, plain } from "./dom.js";

export const ACTIVITY_LABELS = {
  running: "running", throttled: "throttled", working: "working", parked: "parked", blocked: "blocked",
  review_hold: "in review hold", merge_failure: "merge failed", frozen: "frozen", scheduled: "scheduled",
  waiting: "waiting", idle: "idle",
};
const HOLDS = new Set(["blocked", "review_hold", "merge_failure"]);

/** The line, or null for a hold when the caller shows the hold (and its reason) itself. */
export function activityLine(a, { holds = true } = {}) {
  if (!a || (!holds && HOLDS.has(a.state))) return null;
  const parts = [h("span", { class: `status status-${a.state}` }, ACTIVITY_LABELS[a.state] || a.state)];
  if (a.profile) parts.push(" · ", h("span", { class: "agent" }, plain(a.profile)));
  if (a.since && (a.state === "running" || a.state === "throttled")) {
    // board.js and item.js tick every [data-since] once a second.
    parts.push(" · ", h("span", { "data-since": a.since }, duration(Date.now() / 1000 - a.since)));
  }
  if (a.until) parts.push(" · until ", h("time", { datetime: new Date(a.until * 1000).toISOString() }, clock(a.until)));
  if (a.note && !HOLDS.has(a.state)) parts.push(" · ", plain(a.note));
  return h("p", { class: "activity" }, parts);
}
