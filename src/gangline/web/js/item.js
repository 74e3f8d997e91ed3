// One item in full: what a person asked for, where the pipeline has it, its agent runs (one of
// them streaming below the table), its gates and hooks, what it changed and how it got here. Pipeline
// events about the item re-read it; each part is redrawn only when its own data changed, so an
// open stream, an expanded gate output or a focused button survive the updates.

import { actionButtons } from "./actions.js";
import { activityLine } from "./activity.js";
import { api } from "./api.js";
import { duration, fill, h, HOLD_LABELS, money, plain, STAGE_LABELS, tokens, when } from "./dom.js";
import { streamView } from "./stream.js";
import { mountTalk } from "./talk.js";

const REFRESH_DELAY_MS = 200; // a transition comes with a few events: one re-read for all of them
const DIFF_OPEN_LINES = 400; // a longer diff starts folded
const REASON_CHARS = 140;

export function mountItem(main, id) {
  const root = h(
    "article",
    { class: "item-view", "data-item": id, "aria-busy": "true" },
    h("p", { class: "loading" }, "Loading…"),
  );
  fill(main, root);

  let parts = null; // the sections, built on the first answer
  let item = null;
  let picked = null; // a run the person chose; until then the view follows the live or latest run
  let stream = null; // { runId, view }
  let timer = null;
  let controller = null;
  let disposed = false;
  let diffKey = null;
  let overviewKey = null;
  let talk = null; // the messages to the coder, and comments on diff lines

  async function load() {
    if (disposed) return;
    if (controller) controller.abort();
    const mine = new AbortController();
    controller = mine;
    try {
      const fresh = await api(`/api/items/${id}`, { signal: mine.signal });
      if (disposed || controller !== mine) return;
      item = fresh;
      render();
    } catch (err) {
      if (err.name === "AbortError" || disposed || controller !== mine) return;
      if (err.status === 404) notFound();
      else if (!item) failed(err);
      // With the item on screen, a failed re-read keeps what is shown; the next event retries.
    } finally {
      if (controller === mine) controller = null;
      root.setAttribute("aria-busy", "false");
      main.dataset.ready = "true"; // for tests: the view has drawn what the server said
    }
  }

  function refreshSoon() {
    clearTimeout(timer);
    timer = setTimeout(load, REFRESH_DELAY_MS);
  }

  function notFound() {
    closeStream();
    parts = null;
    fill(root, h("h1", {}, `No item #${id}`), h("p", {}, h("a", { href: "#/" }, "Back to the board")));
  }

  function failed(err) {
    fill(
      root,
      h("p", { class: "item-error", role: "alert" }, `Could not load item #${id}: ${err.message}`),
      h("button", { type: "button", onclick: () => load() }, "Try again"),
    );
  }

  function render() {
    if (!parts) {
      parts = skeleton();
      fill(root, parts.order);
      talk = mountTalk(parts.talk.el, id);
    }
    talk.refresh(item);
    document.title = `gangline · #${item.id} ${plain(item.title)}`;
    const headKey = [item.kind, item.id, item.title, item.stage, item.hold, item.frozen, item.activity];
    update("head", headKey, () => head(item));
    updateActions();
    update("notes", [item.hold, item.hold_reason, item.feedback], () => notes(item));
    update("body", [item.body], () => bodyText(item.body));
    update("criteria", [item.criteria], () => criteria(item.criteria));
    parts.report.el.parentElement.hidden = item.kind !== "spike";
    update("report", [item.report], () =>
      item.report ? h("div", { class: "report" }, plain(item.report)) : h("p", { class: "empty" }, "No report yet."),
    );
    followRun();
    update("runs", [item.runs, stream && stream.runId], () => runsTable(item.runs, stream && stream.runId, pick));
    update("gates", [item.gates], () => gates(item.gates));
    parts.hooks.el.parentElement.hidden = !item.hooks.length; // only a project with hooks has them
    update("hooks", [item.hooks], () => gates(item.hooks));
    update("timeline", [item.transitions], () => timeline(item.transitions));
    update("facts", factsKey(item), () => facts(item));
    loadOverview();
    loadDiff();
  }

  /** Redraw part `name` only when `key` differs from what it was drawn from. */
  function update(name, key, draw) {
    const part = parts[name];
    const json = JSON.stringify(key);
    if (part.key === json) return;
    part.key = json;
    fill(part.el, draw());
  }

  function updateActions() {
    const focused = parts.actions.el.contains(document.activeElement) ? document.activeElement : null;
    const which = focused && (focused.dataset.action || (focused.hasAttribute("data-edit") ? "edit" : null));
    update("actions", [item.actions, item.activity, item.title], () => [
      actionButtons(item, "item"),
      h(
        "button",
        {
          type: "button",
          class: "act edit",
          "data-edit": true,
          "aria-label": `Edit #${item.id}`,
          onclick: () => window.dispatchEvent(new CustomEvent("gangline:edit", { detail: item })),
        },
        "Edit",
      ),
    ]);
    if (which && !parts.actions.el.contains(document.activeElement)) {
      const again = which === "edit"
        ? parts.actions.el.querySelector("[data-edit]")
        : parts.actions.el.querySelector(`[data-action="${CSS.escape(which)}"]`);
      if (again) again.focus();
    }
  }

  // --- the stream under the runs table ---------------------------------------------------

  function followRun() {
    const runs = item.runs || [];
    if (picked && !runs.some((run) => run.id === picked)) picked = null;
    showStream(picked || defaultRun(runs));
  }

  function pick(runId) {
    picked = runId;
    showStream(runId);
    update("runs", [item.runs, runId], () => runsTable(item.runs, runId, pick));
  }

  function showStream(runId) {
    if (stream && stream.runId === runId) return;
    closeStream();
    if (!runId) {
      fill(parts.stream.el, h("p", { class: "empty" }, "No agent has run on this item yet."));
      return;
    }
    const view = streamView(runId);
    stream = { runId, view };
    fill(parts.stream.el, view.element);
  }

  function closeStream() {
    if (stream) stream.view.close();
    stream = null;
  }

  // --- the diff ------------------------------------------------------------------------------

  // A merged item's overview (GET /api/items/<id>/overview): read once per merged commit.
  async function loadOverview() {
    const merged = Boolean(item.merged_commit) && (item.stage === "done" || item.stage === "archived");
    parts.overview.el.parentElement.hidden = !merged;
    if (!merged || overviewKey === item.merged_commit) return;
    overviewKey = item.merged_commit;
    try {
      const found = await api(`/api/items/${id}/overview`);
      if (disposed || !parts) return;
      update("overview", [found], () => overviewView(found));
    } catch (err) {
      if (disposed || !parts) return;
      overviewKey = null; // try again on the next change
      update("overview", ["error", err.message], () => h("p", { class: "item-error" }, `Could not load the overview: ${err.message}`));
    }
  }

  async function loadDiff() {
    // The branch moves while an agent works, and the merge replaces it: re-read after either.
    const key = JSON.stringify([item.updated_at, item.merged_commit, item.runs.map((r) => [r.id, r.live, r.ended_at])]);
    if (key === diffKey) return;
    diffKey = key;
    try {
      const diff = await api(`/api/items/${id}/diff`);
      if (disposed || diffKey !== key || !parts) return;
      update("diff", [diff], () => diffView(diff, talk.commentOn));
    } catch (err) {
      if (disposed || diffKey !== key || !parts) return;
      diffKey = null; // try again on the next change
      update("diff", ["error", err.message], () => [
        h("h2", { id: "item-diff" }, "Changes"),
        h("p", { class: "item-error" }, `Could not load the changes: ${err.message}`),
      ]);
    }
  }

  // --- the page's wiring ---------------------------------------------------------------------

  const onItem = (e) => {
    if (e.detail && e.detail.id === id) refreshSoon();
  };
  window.addEventListener("gangline:item", onItem);
  // The clocks of live runs and of the activity line.
  const ticker = setInterval(() => {
    for (const el of root.querySelectorAll("[data-since]")) {
      el.textContent = duration(Date.now() / 1000 - Number(el.dataset.since));
    }
  }, 1000);
  load();

  return {
    dispose() {
      disposed = true;
      clearTimeout(timer);
      clearInterval(ticker);
      if (controller) controller.abort();
      window.removeEventListener("gangline:item", onItem);
      closeStream();
      if (talk) talk.dispose();
    },
    event(row) {
      if (row && row.item_id === id) refreshSoon();
    },
  };
}

/** The view's sections in page order, each with the element its content is drawn into. */
function skeleton() {
  const section = (cls, heading, headingId, inner) =>
    h("section", { class: cls, "aria-labelledby": headingId }, h("h2", { id: headingId }, heading), inner);
  const parts = {};
  const el = (name, tag, attrs = {}) => {
    parts[name] = { el: h(tag, attrs), key: null };
    return parts[name].el;
  };
  const head = el("head", "div", { class: "item-title" });
  const actions = el("actions", "div", { class: "actions item-actions", role: "group", "aria-label": "Actions" });
  parts.order = [
    h("header", { class: "item-head" }, head, actions),
    el("notes", "div", { class: "item-notes" }),
    section("item-overview", "How it got here", "item-overview", el("overview", "div")),
    section("item-body", "Description", "item-body", el("body", "div")),
    section("item-criteria", "Acceptance criteria", "item-criteria", el("criteria", "div")),
    section("item-report", "Report", "item-report", el("report", "div")),
    section("item-talk", "Messages to the coder", "item-talk", el("talk", "div", { class: "talk" })),
    section("item-runs", "Runs", "item-runs", [el("runs", "div"), el("stream", "div", { class: "stream-slot" })]),
    section("item-gates", "Gates", "item-gates", el("gates", "div")),
    section("item-hooks", "Hooks", "item-hooks", el("hooks", "div")),
    el("diff", "section", { class: "diff", "aria-labelledby": "item-diff" }),
    section("item-timeline", "History", "item-timeline", el("timeline", "div")),
    section("item-facts", "Details", "item-facts", el("facts", "div")),
  ];
  fill(parts.diff.el, h("h2", { id: "item-diff" }, "Changes"), h("p", { class: "loading" }, "Loading changes…"));
  parts.diff.key = null;
  return parts;
}

/** The live run if one is going on, else the latest run, else none. */
function defaultRun(runs) {
  const live = runs.filter((run) => run.live);
  const pool = live.length ? live : runs;
  const latest = pool.reduce((best, run) => (!best || run.started_at >= best.started_at ? run : best), null);
  return latest ? latest.id : null;
}

// --- the parts -------------------------------------------------------------------------------

function head(item) {
  return [
    h(
      "p",
      { class: "item-badges" },
      h("span", { class: `kind kind-${item.kind}` }, item.kind),
      h("span", { class: "id" }, `#${item.id}`),
      h("span", { class: `badge stage stage-${item.stage}` }, STAGE_LABELS[item.stage] || item.stage),
      item.hold ? h("span", { class: `badge hold hold-${item.hold}` }, HOLD_LABELS[item.hold] || item.hold) : null,
      item.frozen ? h("span", { class: "badge frozen-badge" }, "Frozen") : null,
    ),
    h("h1", {}, plain(item.title)),
    activityLine(item.activity),
  ];
}

function notes(item) {
  const out = [];
  if (item.hold) {
    out.push(
      h(
        "div",
        { class: `note note-hold hold-${item.hold}`, role: "note" },
        h("strong", {}, `${HOLD_LABELS[item.hold] || item.hold}: `),
        h("span", { class: "note-text" }, plain(item.hold_reason || "no reason given")),
      ),
    );
  }
  if (item.feedback) {
    out.push(
      h(
        "div",
        { class: "note note-feedback", role: "note" },
        h("strong", {}, "Feedback for the coder: "),
        h("span", { class: "note-text" }, plain(item.feedback)),
      ),
    );
  }
  return out;
}

function bodyText(body) {
  if (!body || !body.trim()) return h("p", { class: "empty" }, "No description.");
  return h("pre", { class: "body-text" }, plain(body));
}

function criteria(list) {
  if (!list.length) return h("p", { class: "empty" }, "None.");
  return h(
    "ul",
    { class: "criteria" },
    list.map((c) =>
      h(
        "li",
        { class: `criterion ${c.checked ? "done" : "open"}`, "data-checked": String(Boolean(c.checked)) },
        h("span", { class: "mark", role: "img", "aria-label": c.checked ? "done" : "open" }, c.checked ? "✓" : ""),
        h("span", { class: "criterion-text" }, plain(c.text)),
      ),
    ),
  );
}

function runsTable(runs, selected, pick) {
  if (!runs.length) return h("p", { class: "empty" }, "No runs yet.");
  const ordered = [...runs].sort((a, b) => b.started_at - a.started_at);
  const head = ["Run", "Role", "Profile", "Attempt", "Outcome", "Reason", "Duration", "Tokens", "Cost"];
  return h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Runs" },
    h(
      "table",
      { class: "runs" },
      h("caption", { class: "visually-hidden" }, "Agent runs, newest first; choose one to see its stream"),
      h("thead", {}, h("tr", {}, head.map((name) => h("th", { scope: "col" }, name)))),
      h(
        "tbody",
        {},
        ordered.map((run) => runRow(run, run.id === selected, pick)),
      ),
    ),
  );
}

function runRow(run, selected, pick) {
  const outcome = run.live ? "running" : run.outcome || "ended";
  const spent = run.ended_at
    ? duration(run.ended_at - run.started_at)
    : run.live
      ? h("span", { "data-since": run.started_at }, duration(Date.now() / 1000 - run.started_at))
      : "";
  const input = run.input_tokens + run.cache_read_tokens + run.cache_write_tokens;
  const tokenTitle =
    `input ${run.input_tokens}, cache read ${run.cache_read_tokens}, ` +
    `cache write ${run.cache_write_tokens}, output ${run.output_tokens}`;
  return h(
    "tr",
    { "data-run": run.id, class: selected ? "selected" : null },
    h(
      "th",
      { scope: "row" },
      h(
        "button",
        {
          type: "button",
          class: "run-pick",
          "aria-pressed": String(selected),
          "aria-label": `Show the stream of run ${run.id}`,
          onclick: () => pick(run.id),
        },
        run.id,
      ),
    ),
    h("td", {}, run.role),
    h("td", {}, plain(run.profile)),
    h("td", { class: "num" }, run.attempt),
    h("td", {}, h("span", { class: `outcome outcome-${outcome}` }, outcome)),
    h("td", { class: "reason" }, reasonText(plain(run.reason || ""))),
    h("td", { class: "num" }, spent),
    h("td", { class: "num", title: tokenTitle }, `${tokens(input)} in · ${tokens(run.output_tokens)} out`),
    h("td", { class: "num" }, money(run.cost_usd)),
  );
}

/** A run's reason in a line; a long one (a crash quotes the CLI's last output) opens to its whole text. */
function reasonText(reason) {
  if (reason.length <= REASON_CHARS) return reason;
  return h(
    "details",
    { class: "long-reason" },
    h("summary", {}, `${reason.slice(0, REASON_CHARS)}…`),
    h("pre", {}, reason),
  );
}

function gates(list) {
  if (!list.length) return h("p", { class: "empty" }, "No gate has run yet.");
  return h(
    "ul",
    { class: "gates" },
    list.map((g) => {
      const verdict = g.passed ? "passed" : g.timed_out ? "timed out" : "failed";
      return h(
        "li",
        { class: `gate ${g.passed ? "passed" : "failed"}`, "data-gate": g.name },
        h(
          "p",
          { class: "gate-line" },
          h("strong", { class: "gate-name" }, plain(g.name)),
          " ",
          h("span", { class: `badge verdict ${g.passed ? "ok" : "bad"}` }, verdict),
          ` · exit ${g.exit_code ?? "none"} · ${seconds(g.duration_s)} · ${g.context} · `,
          timeEl(g.at, when(g.at)),
        ),
        h("code", { class: "gate-command" }, plain(g.command)),
        h(
          "details",
          { class: "gate-output" },
          h("summary", {}, g.truncated ? "Output (truncated)" : "Output"),
          h("pre", {}, plain(g.output) || "(no output)"),
        ),
      );
    }),
  );
}

function seconds(s) {
  return s < 60 ? `${s.toFixed(1)} s` : duration(s);
}

function timeline(transitions) {
  if (!transitions.length) return h("p", { class: "empty" }, "Nothing has happened yet.");
  return h(
    "ol",
    { class: "timeline" },
    transitions.map((t) =>
      h(
        "li",
        { class: "transition" },
        timeEl(t.at, when(t.at)),
        " ",
        h("span", { class: "move" }, stateLabel(t.from_stage, t.from_hold), " → ", stateLabel(t.to_stage, t.to_hold)),
        t.trigger ? h("span", { class: "trigger" }, ` (${t.trigger.replaceAll("_", " ")})`) : null,
        ` by ${plain(t.actor)}`,
        t.reason ? h("p", { class: "reason" }, plain(t.reason)) : null,
      ),
    ),
  );
}

function stateLabel(stage, hold) {
  const name = stage ? STAGE_LABELS[stage] || stage : "—";
  return hold ? `${name} (${HOLD_LABELS[hold] || hold})` : name;
}

function factsKey(item) {
  const { id, name, branch, priority, depends_on, pinned_agent, qa_mode, retries, merge_attempts, cost_usd } = item;
  const { created_at, updated_at, start_after, parked_until, archive_at, merged_commit, session_id } = item;
  return [id, name, branch, priority, depends_on, pinned_agent, qa_mode, retries, merge_attempts, cost_usd,
    created_at, updated_at, start_after, parked_until, archive_at, merged_commit, session_id];
}

function overviewView(o) {
  const runs = Object.entries(o.runs).map(([role, n]) => `${n} ${role}`).join(", ") || "none";
  const rows = [
    ["Merged", `${o.commit.sha.slice(0, 12)} onto ${o.base}: ${o.files.length} file(s), +${o.additions} −${o.deletions}`],
    ["Took", `${duration(o.lead_time_s)} from creation${o.work_time_s === null ? "" : `, ${duration(o.work_time_s)} of it after it started`}`],
    ["Agent runs", `${runs}, ${duration(o.agent_time_s)} in all; ${o.retries} failed attempt(s) before the one merged`],
    ["Passed by", plain(o.passed_by)],
    ["Cost", `${money(o.cost_usd)} (${tokens(o.input_tokens)} in, ${tokens(o.output_tokens)} out)`],
    ["Gates at merge", o.gates.map((g) => `${plain(g.name)} ${g.passed ? "✓" : "✗"}`).join(", ") || "none"],
    ...o.rejections.map((reason) => ["Sent back", plain(reason.split("\n")[0])]),
  ];
  return h("dl", { class: "item-facts-list overview" }, rows.map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, value))));
}

function facts(item) {
  const rows = [
    ["Branch", h("code", {}, plain(item.branch))],
    ["Priority", String(item.priority)],
    ["Depends on", item.depends_on.length ? dependencies(item.depends_on) : null],
    ["Pinned agent", item.pinned_agent ? plain(item.pinned_agent) : null],
    ["QA", item.qa_mode],
    ["Retries", String(item.retries)],
    ["Merge attempts", String(item.merge_attempts)],
    ["Cost", money(item.cost_usd)],
    ["Starts after", item.start_after ? timeEl(item.start_after, when(item.start_after)) : null],
    ["Parked until", item.parked_until ? timeEl(item.parked_until, when(item.parked_until)) : null],
    ["Merged as", item.merged_commit ? h("code", {}, item.merged_commit.slice(0, 12)) : null],
    ["Archives at", item.archive_at ? timeEl(item.archive_at, when(item.archive_at)) : null],
    ["Session", item.session_id ? h("code", {}, plain(item.session_id)) : null],
    ["Created", timeEl(item.created_at, when(item.created_at))],
    ["Updated", timeEl(item.updated_at, when(item.updated_at))],
  ];
  return h(
    "dl",
    { class: "item-facts-list" },
    rows
      .filter(([, value]) => value !== null && value !== undefined)
      .map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, value))),
  );
}

function dependencies(ids) {
  return ids.map((d, i) => [i ? ", " : "", h("a", { href: `#/items/${d}` }, `#${d}`)]);
}

function timeEl(epochS, text) {
  return h("time", { datetime: new Date(epochS * 1000).toISOString() }, text);
}

// --- the diff --------------------------------------------------------------------------------

function diffView(diff, commentOn) {
  const heading = h("h2", { id: "item-diff" }, "Changes");
  const where = diff.merged
    ? `Merged onto ${diff.base}${diff.commits.length ? ` as ${diff.commits[0].sha.slice(0, 12)}` : ""}.`
    : `Branch ${diff.branch}, against where it left ${diff.base}.`;
  if (!diff.files.length && !diff.diff) {
    return [heading, h("p", { class: "diff-where" }, plain(where)), h("p", { class: "empty" }, "No changes yet.")];
  }
  const added = diff.files.reduce((sum, f) => sum + f.additions, 0);
  const removed = diff.files.reduce((sum, f) => sum + f.deletions, 0);
  const lines = plain(diff.diff).split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return [
    heading,
    h(
      "p",
      { class: "diff-where" },
      plain(where),
      ` ${diff.files.length} file${diff.files.length === 1 ? "" : "s"}, `,
      h("span", { class: "diff-add" }, `+${added}`),
      " ",
      h("span", { class: "diff-del" }, `−${removed}`),
    ),
    diff.commits.length
      ? h(
          "ul",
          { class: "commits" },
          diff.commits.map((c) => h("li", {}, h("code", {}, c.sha.slice(0, 8)), " ", plain(c.subject))),
        )
      : null,
    h(
      "div",
      { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Changed files" },
      h(
        "table",
        { class: "diff-files" },
        h("thead", {}, h("tr", {}, ["File", "Added", "Removed"].map((name) => h("th", { scope: "col" }, name)))),
        h(
          "tbody",
          {},
          diff.files.map((f) =>
            h(
              "tr",
              { "data-path": f.path },
              h("th", { scope: "row" }, h("code", {}, plain(f.path))),
              f.binary
                ? h("td", { class: "num", colspan: "2" }, "binary")
                : [
                    h("td", { class: "num diff-add" }, `+${f.additions}`),
                    h("td", { class: "num diff-del" }, `−${f.deletions}`),
                  ],
            ),
          ),
        ),
      ),
    ),
    h(
      "details",
      { class: "diff-text", open: lines.length <= DIFF_OPEN_LINES },
      h("summary", {}, `Diff (${lines.length} line${lines.length === 1 ? "" : "s"})`),
      diff.merged ? null : h("p", { class: "hint" }, "Comment on a line (its + button) to send the comment to the coder with your next message."),
      h("pre", { class: "diff-lines" }, diffLines(lines, diff.merged ? null : commentOn)),
      diff.truncated ? h("p", { class: "more" }, "The diff is longer than this; the rest is not shown.") : null,
    ),
  ];
}

/** A span per line, classed by what the line is; file headers are told from removed lines by position.
 * With `commentOn`, each line of the new version (added or context) has a button to comment on it. */
function diffLines(lines, commentOn) {
  const out = document.createDocumentFragment();
  let inHunk = false;
  let path = null;
  let number = 0; // the line's number in the new version of the file
  for (const line of lines) {
    let cls;
    if (line.startsWith("diff ")) {
      inHunk = false;
      cls = "meta";
    } else if (line.startsWith("@@")) {
      inHunk = true;
      cls = "hunk";
      const found = line.match(/^@@ -\d+(?:,\d+)? \+(\d+)/);
      number = found ? Number(found[1]) : 0;
    } else if (!inHunk) {
      cls = "meta";
      if (line.startsWith("+++ ")) path = line.slice(4).replace(/^b\//, "");
    } else if (line.startsWith("+")) cls = "add";
    else if (line.startsWith("-")) cls = "del";
    else if (line.startsWith("\\")) cls = "meta";
    else cls = "ctx";
    const span = h("span", { class: `line ${cls}` }, `${line}\n`);
    if (commentOn && path && path !== "/dev/null" && (cls === "add" || cls === "ctx")) {
      const at = number;
      const where = path;
      span.dataset.path = where;
      span.dataset.line = String(at);
      span.prepend(h("button", { type: "button", class: "comment-line", "aria-label": `Comment on ${where} line ${at}`,
                                 onclick: () => commentOn(where, at, span) }, "+"));
    }
    if (cls === "add" || cls === "ctx") number += 1;
    out.append(span);
  }
  return out;
}
