"""The guide every agent's prompt carries unless the project writes its own (``.gangline/guide.md``)."""

GUIDE = """\
# Working in a gangline project

gangline runs coding agents on work items. This is how it works from the agent's side.

## Where you are

- You run inside a git worktree of this repository, checked out on a feature branch made for
  one work item. Your prompt names the workspace directory and the branch.
- Stay inside the worktree: do not change files outside it.
- The base branch belongs to gangline. Never check it out, commit to it, merge into it, rebase
  it or reset it, and never push anything anywhere. Only gangline's merge step advances the
  base branch.

## Saving your work

- Commit your work with git on the current branch (`git add`, then `git commit`). Uncommitted
  work is not merged: only commits on your branch count.
- Commit as often as you like; gangline squashes the branch into one commit when it merges.

## Gates

- After you exit, the server runs the project's gates (its tests, linters, ...) in the worktree.
  You may run them yourself first; your prompt lists them.
- If a gate fails, the server resumes your session with the gate's output. Fix the cause,
  commit, and finish again. After too many failed attempts the item is blocked for a person.

## Roles

- **coder**: do the work item, meet every acceptance criterion, commit.
- **qa**: review the diff against each numbered acceptance criterion. Do not change files.
  Your final message must be only this JSON object:
  `{"verdict": "pass", "criteria": [{"index": 1, "passed": true, "note": "..."}], "summary": "..."}`
  with `"verdict": "fail"` when any criterion is not met. "pass" means every criterion passed.
- **mergemaster**: the workspace holds a squash merge of a feature branch onto the latest base
  branch that conflicts or fails the gates. Resolve it, `git add` and `git commit`, and make
  your final message only this JSON object: `{"resolved": true, "summary": "..."}`
  (`"resolved": false` when you could not).

A final JSON message may be wrapped in one ```json fenced block, and nothing else: no words
before or after it. A JSON object inside a paragraph is not read.
"""
