// One agent run as people read it: the assistant's words as they stream, thinking folded away,
// each tool call as one line that opens onto its input and result, and the run's milestones.
// The same SSE path serves a live run and a finished one (its whole log, then `end`), so both
// render here alike. Every string is a text node with terminal control sequences removed.

import { subscribe } from "./api.js";
import { clock, duration, fill, h, money, plain } from "./dom.js";

const MAX_RECORDS = 5000; // kept to re-render from when the view switches; older ones are dropped
const MAX_ROWS = 3000; // rows in the readable view: a day-long run must not grow the page forever
const SHOWN_CHARS = 4000; // of a tool's result or input field before "… (N more characters)"
const SUMMARY_CHARS = 120;
const LONG_USER_TEXT = 300;
const NEAR_BOTTOM_PX = 32;
const KEPT_MESSAGES = 50; // messages whose streamed blocks still await their complete event
const KEPT_TOOLS = 2000; // calls whose result may still come; an older one's result stands alone
// Tools whose input names a file, by CLI: Claude Code's, then Gemini CLI's.
const PATH_TOOLS = new Set(["Write", "Edit", "MultiEdit", "Read", "NotebookEdit", "write_file", "replace", "read_file"]);
// Tools whose input is a shell command: Claude Code's, Codex's (as gangline names it) and Gemini CLI's.
const COMMAND_TOOLS = new Set(["Bash", "shell", "run_shell_command"]);
// Only bookkeeping for the readable view: the complete events that follow carry what they say.
const QUIET = new Set([
  "message_started", "message_delta", "stream_marker", "block_started", "tool_input_delta", "gap",
]);
const STATUS_TEXT = { connecting: "connecting…", live: "live", retrying: "reconnecting…", finished: "finished" };

/** The live (or replayed) stream of run `runId`: `{element, close()}`. */
export function streamView(runId) {
  const status = h("span", { class: "stream-status", role: "status" });
  const toggle = h("input", { type: "checkbox", class: "raw-toggle", onchange: () => rerender() });
  const body = h("div", {
    class: "stream-body", tabindex: "0", role: "region", "aria-label": `Output of run ${runId}`,
  });
  const trimmedNote = h("p", { class: "stream-trimmed", hidden: true }, "Earlier output is not shown.");
  const latest = h(
    "button",
    { type: "button", class: "stream-latest", hidden: true, onclick: () => jumpToEnd() },
    "↓ Latest",
  );
  const element = h(
    "section",
    { class: "stream", "data-run": runId, "aria-label": `Agent stream of run ${runId}` },
    h(
      "div",
      { class: "stream-bar" },
      h("span", { class: "stream-run" }, runId),
      status,
      h("label", { class: "raw-label" }, toggle, " Raw JSON"),
    ),
    trimmedNote,
    body,
    latest,
  );

  const records = [];
  let lastId = -1;
  let finished = false;
  let following = true;
  let frame = 0;
  let view = readableView(body);

  function setStatus(state) {
    if (finished && state !== "finished") return;
    finished = state === "finished";
    if (finished) draw(); // "finished" never shows above output that is not drawn yet
    status.dataset.state = state;
    status.textContent = STATUS_TEXT[state];
  }
  setStatus("connecting");

  function receive(type, record) {
    if (type === "end") {
      setStatus("finished");
      return;
    }
    if (!record || typeof record !== "object" || !record.event || typeof record.event !== "object") return;
    if (typeof record.id === "number") {
      if (record.id <= lastId) return; // a resumed connection never repeats, but be sure
      lastId = record.id;
    }
    records.push(record);
    if (records.length > MAX_RECORDS + 500) {
      records.splice(0, records.length - MAX_RECORDS); // in batches: not a copy per record
      trimmedNote.hidden = false;
    }
    if (view.add(record)) trimmedNote.hidden = false;
    if (record.event.kind === "run_finished") setStatus("finished");
    schedule();
  }

  // Text deltas arrive a few characters at a time: draw (and scroll) once per frame, not per record.
  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      draw();
    });
  }

  function draw() {
    view.flush();
    if (following) body.scrollTop = body.scrollHeight;
    else latest.hidden = false;
  }

  function rerender() {
    fill(body);
    view = toggle.checked ? rawView(body) : readableView(body);
    for (const record of records) view.add(record);
    draw();
  }

  function jumpToEnd() {
    following = true;
    latest.hidden = true;
    body.scrollTop = body.scrollHeight;
  }

  body.addEventListener("scroll", () => {
    following = body.scrollHeight - body.scrollTop - body.clientHeight <= NEAR_BOTTOM_PX;
    if (following) latest.hidden = true;
  });

  const subscription = subscribe(`/api/runs/${encodeURIComponent(runId)}/events`, {
    onEvent: receive,
    onState(state) {
      setStatus({ open: "live", retrying: "retrying", ended: "finished" }[state] || "connecting");
    },
  });

  return {
    element,
    close() {
      subscription.close();
      if (frame) cancelAnimationFrame(frame);
      frame = 0;
    },
  };
}

// --- the raw view: every record as indented JSON, one after another -----------------------

function rawView(body) {
  return {
    add(record) {
      body.append(h("pre", { class: "raw" }, plain(JSON.stringify(record, null, 2))));
      return trim(body, MAX_RECORDS);
    },
    flush() {},
  };
}

/** Drop the oldest rows past `max`; true when some were dropped. */
function trim(body, max) {
  let dropped = false;
  while (body.childElementCount > max) {
    body.firstElementChild.remove();
    dropped = true;
  }
  return dropped;
}

// --- the readable view -------------------------------------------------------------------------

function readableView(body) {
  // A message's streamed blocks, in order, so its complete events replace them one by one.
  const messages = new Map(); // message id -> { text: [block], thinking: [block], used: {text, thinking} }
  const blocks = new Map(); // message|kind|index|parent -> block being streamed
  const tools = new Map(); // tool_use_id -> { row, state, result }
  const dirty = new Set();
  let message = "(none)"; // the message deltas belong to, from message_started
  let anonymous = 0;

  function entry(id) {
    let found = messages.get(id);
    if (!found) {
      found = { text: [], thinking: [], used: { text: 0, thinking: 0 } };
      messages.set(id, found);
      forgetOldest(messages, KEPT_MESSAGES);
    }
    return found;
  }

  function newBlock(kind, nested) {
    const node = document.createTextNode("");
    const el =
      kind === "text"
        ? h("div", { class: `msg-text${nested}` }, node)
        : h(
            "details",
            { class: `thinking${nested}` },
            h("summary", {}, "Thinking"),
            h("div", { class: "thinking-text" }, node),
          );
    body.append(el);
    return { el, node, raw: "" };
  }

  function delta(kind, e) {
    const key = `${message}|${kind}|${e.index ?? 0}|${e.parent_tool_use_id ?? ""}`;
    let block = blocks.get(key);
    if (!block) {
      block = newBlock(kind, nestedClass(e));
      blocks.set(key, block);
      entry(message)[kind].push(block);
    }
    block.raw += String(e.text ?? "");
    dirty.add(block);
  }

  /** The complete text of a block: it replaces what the deltas drew, or stands alone if none did. */
  function complete(kind, e) {
    const found = entry(e.message_id ?? message);
    const streamed = found.used[kind] < found[kind].length;
    const block = streamed ? found[kind][found.used[kind]++] : newBlock(kind, nestedClass(e));
    block.raw = String(e.text ?? "");
    dirty.add(block);
    if (e.error) {
      block.el.classList.add("error");
      block.el.append(h("span", { class: "msg-error" }, ` (${plain(e.error)})`));
    }
  }

  function toolUse(e) {
    const state = h("span", { class: "tool-state" }, "running");
    const result = h("div", { class: "tool-result" }, h("p", { class: "tool-pending" }, "No result yet."));
    const row = h(
      "details",
      { class: `tool${nestedClass(e)}`, "data-tool": String(e.name ?? "?"), "data-tool-id": e.tool_use_id ?? null },
      h(
        "summary",
        {},
        h("span", { class: "tool-name" }, plain(e.name ?? "?")),
        " ",
        h("code", { class: "tool-summary" }, summarize(e.name, e.input)),
        " ",
        state,
      ),
      h("div", { class: "tool-detail" }, h("p", { class: "tool-label" }, "Input"), inputView(e.input)),
      h("div", { class: "tool-detail" }, h("p", { class: "tool-label" }, "Result"), result),
    );
    body.append(row);
    if (e.tool_use_id) {
      tools.set(e.tool_use_id, { row, state, result });
      forgetOldest(tools, KEPT_TOOLS);
    }
  }

  function toolResult(e) {
    let tool = tools.get(e.tool_use_id);
    if (!tool) {
      // Its call is before the kept records: show the result on its own.
      toolUse({ tool_use_id: e.tool_use_id, name: "?", input: { tool_use_id: e.tool_use_id } });
      tool = tools.get(e.tool_use_id);
    }
    const text = typeof e.content === "string" ? e.content : JSON.stringify(e.content);
    fill(tool.result, h("pre", { class: "tool-output" }, clipped(text)));
    tool.state.textContent = e.is_error ? "error" : "done";
    if (e.is_error) tool.row.classList.add("error");
  }

  /** A command's exit status on its tool row (or a row of its own when its call is not shown). */
  function command(e) {
    const tool = tools.get(e.tool_use_id);
    const status = known(e.exit_code) ? `exit ${e.exit_code}` : plain(e.status ?? "done");
    if (!tool) return row("meta command", `$ ${plain(e.command)} (${status})`);
    tool.state.textContent = status;
    if (e.exit_code) tool.row.classList.add("error");
  }

  function fileChange(e) {
    const files = (Array.isArray(e.changes) ? e.changes : []).map((c) => `${plain(c.kind)} ${plain(c.path)}`);
    row(`meta file-change${e.status === "completed" ? "" : " error"}`, `Files changed: ${files.join(", ") || "none"}`);
  }

  function todoList(e) {
    const items = Array.isArray(e.items) ? e.items : [];
    row("meta todo", `Plan: ${items.map((t) => `${t.completed ? "✓" : "○"} ${plain(t.text)}`).join(" · ")}`);
  }

  function row(cls, ...children) {
    body.append(h("div", { class: cls }, ...children));
  }

  const handlers = {
    message_started: (e) => {
      message = e.message_id ?? `(anonymous ${++anonymous})`;
      blocks.clear(); // deltas only ever extend the current message's blocks
    },
    text_delta: (e) => delta("text", e),
    thinking_delta: (e) => delta("thinking", e),
    assistant_text: (e) => complete("text", e),
    assistant_thinking: (e) => complete("thinking", e),
    tool_use: toolUse,
    tool_result: toolResult,
    command,
    file_change: fileChange,
    todo_list: todoList,
    agent_error: (e) => row(e.fatal ? "warn-row error" : "warn-row", `agent error: ${plain(e.message)}`),
    user_text: (e) => body.append(userText(plain(e.text), nestedClass(e))),
    session_started: (e) =>
      row(
        "meta session",
        `Session ${plain(e.session_id)}`,
        e.model ? ` · model ${plain(e.model)}` : "",
        e.cli_version ? ` · CLI ${plain(e.cli_version)}` : "",
      ),
    process_started: (e) => row("meta process", `Process started, pid ${e.pid}`),
    // The CLI's own status pings ("requesting") say nothing a person needs; the raw view keeps them.
    system: (e) => e.subtype !== "status" && row("meta system", plain(e.subtype), e.detail ? `: ${plain(e.detail)}` : ""),
    rate_limit: (e) =>
      row(
        "warn-row",
        `rate limit: ${plain(e.status)}${e.hard_block ? " (blocked)" : ""}`,
        e.resets_at ? `, resets at ${clock(e.resets_at)}` : "",
      ),
    api_retry: (e) =>
      row(
        "warn-row",
        `throttled: ${plain(e.error_status ?? e.error ?? "error")}, retry ${e.attempt}`,
        known(e.retry_delay_ms) ? ` in ${(e.retry_delay_ms / 1000).toFixed(1)} s` : "",
      ),
    result: (e) => body.append(resultRow(e)),
    run_finished: (e) => body.append(finishedRow(e)),
  };

  return {
    add(record) {
      const e = record.event;
      if (Object.hasOwn(handlers, e.kind)) handlers[e.kind](e);
      else if (!QUIET.has(e.kind)) {
        const { kind, ...fields } = e;
        row("raw", h("span", { class: "raw-kind" }, plain(kind ?? "?")), " ", plain(JSON.stringify(fields)));
      }
      return trim(body, MAX_ROWS);
    },
    flush() {
      for (const block of dirty) block.node.data = plain(block.raw);
      dirty.clear();
    },
  };
}

/** Maps iterate in insertion order: drop the oldest entries past `max`. */
function forgetOldest(map, max) {
  for (const key of map.keys()) {
    if (map.size <= max) return;
    map.delete(key);
  }
}

function known(value) {
  return value !== null && value !== undefined;
}

function nestedClass(e) {
  return e && e.parent_tool_use_id ? " nested" : "";
}

/** What a tool call does, in one line: the command, the file, or its input as JSON. */
function summarize(name, input) {
  let text;
  if (COMMAND_TOOLS.has(name) && input && typeof input.command === "string") text = input.command;
  else if (PATH_TOOLS.has(name) && input && typeof (input.file_path ?? input.notebook_path) === "string") {
    text = input.file_path ?? input.notebook_path;
  } else text = JSON.stringify(input ?? null);
  const line = plain(text).replace(/\s+/g, " ").trim();
  return line.length > SUMMARY_CHARS ? `${line.slice(0, SUMMARY_CHARS - 1)}…` : line;
}

/** A tool's input, a field at a time: a file's content or a command reads better than escaped JSON. */
function inputView(input) {
  if (!input || typeof input !== "object" || Array.isArray(input)) {
    return h("pre", { class: "tool-input" }, clipped(JSON.stringify(input ?? null, null, 2)));
  }
  return h(
    "div",
    { class: "tool-input" },
    Object.entries(input).map(([key, value]) =>
      h(
        "div",
        { class: "tool-field" },
        h("span", { class: "tool-key" }, plain(key)),
        h("pre", { class: "tool-value" }, clipped(typeof value === "string" ? value : JSON.stringify(value, null, 2))),
      ),
    ),
  );
}

/** Long text cut to its first SHOWN_CHARS characters, saying how much more there was. */
function clipped(text) {
  const clean = plain(text);
  if (clean.length <= SHOWN_CHARS) return clean;
  const more = clean.length - SHOWN_CHARS;
  return [clean.slice(0, SHOWN_CHARS), h("span", { class: "more" }, `… (${more} more characters)`)];
}

function userText(text, nested) {
  if (text.length <= LONG_USER_TEXT && text.split("\n").length <= 4) {
    return h("div", { class: `user-text${nested}` }, h("span", { class: "who" }, "User: "), text);
  }
  const first = text.split("\n", 1)[0].slice(0, SUMMARY_CHARS);
  return h(
    "details",
    { class: `user-text${nested}` },
    h("summary", {}, h("span", { class: "who" }, "User: "), first, "…"),
    h("pre", { class: "user-full" }, text),
  );
}

function resultRow(e) {
  const facts = [`Result: ${plain(e.subtype)}${e.is_error ? " (error)" : ""}`];
  if (known(e.num_turns)) facts.push(`${e.num_turns} turn${e.num_turns === 1 ? "" : "s"}`);
  if (e.duration_ms) facts.push(duration(e.duration_ms / 1000));
  if (known(e.cost_usd)) facts.push(money(e.cost_usd));
  const text = typeof e.result === "string" && e.result ? plain(e.result) : null;
  return h(
    "div",
    { class: `result-row${e.is_error ? " error" : ""}` },
    h("p", {}, facts.join(" · ")),
    text
      ? h("details", { class: "result-text" }, h("summary", {}, "Final message"), h("pre", {}, clipped(text)))
      : null,
  );
}

function finishedRow(e) {
  const facts = [`Run ${plain(e.outcome)}${e.reason ? `: ${plain(e.reason)}` : ""}`];
  if (known(e.exit_code)) facts.push(`exit ${e.exit_code}`);
  if (e.signal) facts.push(`signal ${e.signal}`);
  if (known(e.cost_usd)) facts.push(money(e.cost_usd));
  if (e.resets_at) facts.push(`resets at ${clock(e.resets_at)}`);
  return h("div", { class: `finished-row outcome-${String(e.outcome).replace(/[^a-z_]/g, "")}` }, facts.join(" · "));
}
