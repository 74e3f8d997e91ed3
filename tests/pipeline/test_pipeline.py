"""Items through the whole pipeline on real git repos, with fake agents scripted per scenario."""

from __future__ import annotations

import asyncio

import pytest

from gangline.core.events import RunOutcome
from gangline.core.items import ItemDraft
from gangline.core.profiles import Role
from gangline.core.stages import Facts, Hold, Stage, Trigger
from kits.pipeline_kit import Project, commit_file, git

WRITE = [{"say": "working on it"}, *commit_file("work/{item_slug}.txt", "done by {item_id}\n")]
GATE_HAS_WORK = ("work", 'test -n "$(git ls-files work)"')


@pytest.fixture
def project(tmp_path):  # type: ignore[no-untyped-def]
    return Project(tmp_path)


async def test_an_item_that_the_agent_commits_goes_from_backlog_to_done_with_one_squash_commit(
    project: Project,
) -> None:
    project.agent("coder", [[{"say": "step one"}, *commit_file("a.txt", "1\n"), *commit_file("b.txt", "2\n")]])
    project.configure(gates=[("files", "test -f a.txt && test -f b.txt")])
    item = project.add("Add two files")
    await project.run_until_idle()
    done = project.item(item.id)
    assert done.stage is Stage.DONE and done.merged_commit is not None
    assert project.base_log() == ["Add two files (#1)", "initial"]
    assert project.base_file("a.txt") == "1" and project.base_file("b.txt") == "2"
    transitions = [(e.trigger, e.to_stage) for e in project.store.events_after(0) if e.kind == "transition"]
    assert transitions == [("start", "coding"), ("coded", "qa"), ("qa_passed", "merge"), ("merged", "done")]
    [run] = project.store.runs(item.id)
    assert run.outcome is RunOutcome.SUCCEEDED and run.cost_usd > 0 and run.pid and run.start_ticks


async def test_an_agent_that_crashes_after_committing_still_delivers_its_work(project: Project) -> None:
    project.agent("coder", [[*commit_file("a.txt", "kept\n"), {"crash": "SIGKILL"}]])
    project.configure(gates=[("a", "test -f a.txt")])
    item = project.add("Crashy agent")
    await project.run_until_idle()
    assert project.stage(item.id) is Stage.DONE
    [run] = project.store.runs(item.id)
    assert run.outcome is RunOutcome.CRASHED  # the run crashed; the work survived
    assert project.base_file("a.txt") == "kept"


async def test_a_cli_that_refuses_to_start_blocks_at_once_with_its_own_words(project: Project) -> None:
    said = "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons"
    project.agent("coder", [[{"refuse": said}]])
    project.configure()
    item = project.add("Never starts")
    await project.run_until_idle()
    held = project.item(item.id)
    assert held.state.hold is Hold.BLOCKED
    reason = held.state.hold_reason or ""
    assert reason.startswith("the agent CLI refused to start: it exited with code 1 before starting a session")
    assert f"saying: {said}. Fix: " in reason
    assert "Fix: " in reason and "bubblewrap" in reason
    [run] = project.store.runs(item.id)  # no retry: the same set-up fails the same way
    assert run.outcome is RunOutcome.REFUSED


async def test_a_block_after_crashes_names_the_crash_not_only_the_missing_commit(project: Project) -> None:
    project.agent("coder", [[{"say": "working"}, {"crash": "SIGKILL"}]])
    project.configure(max_retries=2)
    item = project.add("Crashes every time")
    await project.run_until_idle()
    reason = project.item(item.id).state.hold_reason or ""
    assert reason.startswith("3 attempts failed; the last: The run crashed (CLI was killed by SIGKILL without a result")
    assert reason.endswith("You exited without committing any work. Do the item and commit it with git.")


async def test_an_agent_that_never_commits_is_retried_then_blocked_with_the_reason(project: Project) -> None:
    project.agent("coder", [[{"say": "I looked around and did nothing."}]])
    project.configure(max_retries=2)
    item = project.add("Lazy agent")
    await project.run_until_idle()
    held = project.item(item.id)
    assert held.state.stage is Stage.CODING and held.state.hold is Hold.BLOCKED
    assert held.state.hold_reason is not None
    assert held.state.hold_reason.startswith("3 attempts failed; the last: You exited without committing")
    assert len(project.store.runs(item.id)) == 3
    assert project.base_log() == ["initial"]


async def test_gates_that_fail_twice_resume_the_same_session_with_their_output_then_pass(project: Project) -> None:
    verdicts = ["broken", "still broken", "pass"]
    project.agent("coder", [commit_file("status.txt", v, f"attempt {v}") for v in verdicts])
    project.configure(gates=[("check", 'echo checking status; test "$(cat status.txt)" = pass')])
    item = project.add("Flaky work")
    await project.run_until_idle()
    assert project.stage(item.id) is Stage.DONE
    assert project.item(item.id).retries == 2
    runs = project.store.runs(item.id)
    assert [r.attempt for r in runs] == [1, 2, 3]
    assert runs[1].resumed_session == runs[0].session_id == runs[2].resumed_session
    retry_prompt = project.prompts(item.id)[1]
    assert "Gate 'check' failed with exit code 1" in retry_prompt and "checking status" in retry_prompt
    assert len([g for g in project.store.gate_results(item.id) if g.context == "coding"]) == 3


async def test_a_hard_rate_limit_parks_the_item_and_resumes_the_session_without_using_a_retry(project: Project) -> None:
    project.agent("coder", [[{"say": "starting"}, {"rate_limit": {"resets_in_s": 1}}], WRITE])
    project.configure(gates=[GATE_HAS_WORK], max_retries=0, rate_limit={"margin_s": 0})
    item = project.add("Rate limited")
    await project.run_until_idle()
    done = project.item(item.id)
    assert done.stage is Stage.DONE and done.retries == 0
    first, second = project.store.runs(item.id)
    assert first.outcome is RunOutcome.RATE_LIMITED
    assert second.resumed_session == first.session_id
    parked = [e for e in project.store.events_after(0) if e.kind == "parked"]
    assert len(parked) == 1 and parked[0].data["until"] >= first.ended_at  # type: ignore[operator]


async def test_a_rate_limited_coder_hands_the_item_to_its_fallback_profile_at_once(project: Project) -> None:
    project.agent("primary", [[{"say": "starting"}, {"rate_limit": {"resets_in_s": 3600}}]], fallback="backup")
    project.agent("backup", [WRITE])
    project.configure(gates=[GATE_HAS_WORK], max_retries=0)
    item = project.add("Switch agents")
    await project.run_until_idle()
    done = project.item(item.id)
    assert done.stage is Stage.DONE and done.retries == 0
    first, second = project.store.runs(item.id)
    assert (first.profile, first.outcome) == ("primary", RunOutcome.RATE_LIMITED)
    assert (second.profile, second.outcome, second.resumed_session) == ("backup", RunOutcome.SUCCEEDED, None)
    kinds = [e.kind for e in project.store.events_after(0)]
    assert "parked" not in kinds  # nobody waited an hour for the reset
    [switch] = [e for e in project.store.events_after(0) if e.kind == "agent_fallback"]
    assert switch.data == {"from": "primary", "to": "backup", "resets_at": pytest.approx(first.ended_at + 3600, abs=5)}
    assert "Another agent started this item" in project.prompts(item.id)[1]


async def test_a_session_is_never_resumed_by_another_profile_than_the_one_that_made_it(project: Project) -> None:
    # The backup does nothing; the retry goes back to the first coder, which starts a new session.
    project.agent("primary", [[{"rate_limit": {"resets_in_s": 3600}}], WRITE], fallback="backup")
    project.agent("backup", [[{"say": "I will not commit"}]])
    project.configure(gates=[GATE_HAS_WORK], max_retries=1)
    item = project.add("Handover")
    await project.run_until_idle()
    assert project.item(item.id).stage is Stage.DONE
    runs = project.store.runs(item.id)
    assert [(r.profile, r.outcome) for r in runs] == [
        ("primary", RunOutcome.RATE_LIMITED),
        ("backup", RunOutcome.SUCCEEDED),
        ("primary", RunOutcome.SUCCEEDED),
    ]
    assert runs[1].session_id and runs[2].resumed_session is None
    assert "You exited without committing" in project.prompts(item.id)[2]  # the feedback, in a full prompt


async def test_when_the_fallback_is_rate_limited_too_the_item_parks(project: Project) -> None:
    limited = [{"rate_limit": {"resets_in_s": 1}}]
    project.agent("primary", [limited, WRITE], fallback="backup")
    project.agent("backup", [limited], fallback="primary")
    project.configure(gates=[GATE_HAS_WORK], max_retries=0, rate_limit={"margin_s": 0})
    item = project.add("Both limited")
    await project.run_until_idle()
    assert project.item(item.id).stage is Stage.DONE
    assert [r.profile for r in project.store.runs(item.id)] == ["primary", "backup", "primary"]
    kinds = [e.kind for e in project.store.events_after(0)]
    assert kinds.count("agent_fallback") == 1 and kinds.count("parked") == 1


async def test_a_run_past_its_budget_is_stopped_and_the_item_blocked_with_the_amount(project: Project) -> None:
    # One message worth $15 at list price, then the agent would go on forever.
    usage = {"usage": {"input_tokens": 0, "output_tokens": 1_000_000}, "model": "claude-sonnet-4-5"}
    project.agent("coder", [[usage, {"hang": True}]], max_budget_usd=0.5)
    project.configure()
    item = project.add("Expensive")
    await project.run_until_idle()
    held = project.item(item.id)
    assert held.state.hold is Hold.BLOCKED
    assert held.state.hold_reason == "budget exceeded: spent $15.00 of $0.50"
    [run] = project.store.runs(item.id)
    assert run.outcome is RunOutcome.STOPPED and run.cost_usd == pytest.approx(15.0)
    assert [r.cost_usd for r in project.store.ledger("item")] == [pytest.approx(15.0)]


async def test_a_result_over_budget_from_the_cli_blocks_the_item(project: Project) -> None:
    project.agent(
        "coder", [[*commit_file("a", "x"), {"result": {"subtype": "error_max_budget_usd", "is_error": True}}]]
    )
    project.configure()
    item = project.add("Over budget")
    await project.run_until_idle()
    reason = project.item(item.id).state.hold_reason or ""
    assert reason.startswith("budget exceeded: spent $")


async def test_a_conflict_with_an_item_merged_first_fails_the_merge_without_a_mergemaster(project: Project) -> None:
    project.agent("coder", [commit_file("shared.txt", "from item {item_id}\n")])
    project.configure(concurrency={"coder": 2})
    a, b = project.add("First"), project.add("Second")
    await project.run_until_idle()
    stages = sorted((project.item(i.id).state.hold or project.item(i.id).stage).value for i in (a, b))
    assert stages == ["done", "merge_failure"]
    loser = next(i for i in (a, b) if project.item(i.id).state.hold is Hold.MERGE_FAILURE)
    assert "conflicts in: shared.txt" in (project.item(loser.id).state.hold_reason or "")
    assert len(project.base_log()) == 2  # only the winner reached the base branch


async def test_a_mergemaster_resolves_a_conflict_and_the_item_is_merged(project: Project) -> None:
    project.agent("coder", [commit_file("shared.txt", "from item {item_id}\n")])
    resolve = "git checkout --theirs -- shared.txt && git add shared.txt && git commit -q -m resolved"
    project.agent(
        "merger", [[{"run": resolve}, {"final_json": {"resolved": True, "summary": "took ours"}}]], role="mergemaster"
    )
    project.configure(concurrency={"coder": 2})
    a, b = project.add("First"), project.add("Second")
    await project.run_until_idle()
    assert project.stage(a.id) is Stage.DONE and project.stage(b.id) is Stage.DONE
    assert len(project.base_log()) == 3
    masters = [r for r in project.store.runs() if r.role is Role.MERGEMASTER]
    assert len(masters) == 1 and project.base_file("shared.txt").startswith("from item")


async def test_a_mergemaster_that_reports_it_could_not_resolve_fails_the_merge_with_its_summary(
    project: Project,
) -> None:
    project.agent("coder", [commit_file("shared.txt", "from item {item_id}\n")])
    said = {"resolved": False, "summary": "both sides rewrote the same line; a person must choose"}
    project.agent("merger", [[{"final_json": said}]], role="mergemaster")
    project.configure(concurrency={"coder": 2}, max_retries=3)
    a, b = project.add("First"), project.add("Second")
    await project.run_until_idle()
    loser = next(i for i in (a, b) if project.item(i.id).state.hold is Hold.MERGE_FAILURE)
    assert project.item(loser.id).state.hold_reason == f"the mergemaster could not resolve it: {said['summary']}"
    masters = [r for r in project.store.runs() if r.role is Role.MERGEMASTER]
    assert len(masters) == 1  # its word is taken: no second attempt on a merge it gave up on


async def test_work_that_cancels_itself_out_never_reaches_done(project: Project) -> None:
    project.agent("coder", [[*commit_file("tmp.txt", "x"), {"run": "git rm -q tmp.txt"}, {"commit": "undo"}]])
    project.configure()
    item = project.add("Empty in the end")
    await project.run_until_idle()
    held = project.item(item.id)
    assert held.state.hold is Hold.MERGE_FAILURE and "changes nothing" in (held.state.hold_reason or "")
    assert project.base_log() == ["initial"]


async def test_agent_qa_checks_the_criteria_and_a_failing_verdict_sends_the_item_back_to_coding(
    project: Project,
) -> None:
    project.agent("coder", [WRITE, [{"say": "fixed"}, *commit_file("work/fix.txt", "fix\n")]])
    fail = {"verdict": "fail", "criteria": [{"index": 1, "passed": False, "note": "no tests"}], "summary": "missing"}
    ok = {"verdict": "pass", "criteria": [{"index": 1, "passed": True}], "summary": "good"}
    project.agent("qa", [[{"final_json": fail}], [{"final_json": ok}]], role="qa")
    project.configure(qa_mode="agent", gates=[GATE_HAS_WORK])
    item = project.add("Reviewed", criteria=[{"text": "has tests"}])
    await project.run_until_idle()
    done = project.item(item.id)
    assert done.stage is Stage.DONE and done.criteria[0].checked
    triggers = [e.trigger for e in project.store.events_after(0) if e.kind == "transition"]
    assert triggers == ["start", "coded", "qa_failed", "coded", "qa_passed", "merged"]
    assert "QA rejected the work: missing" in project.prompts(item.id)[2]


async def test_prose_from_a_qa_agent_is_not_a_verdict(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.agent("qa", [[{"say": 'Looks good to me! {{"verdict": "pass"}}'}]], role="qa")
    project.configure(qa_mode="agent", max_retries=0)
    item = project.add("Needs a real verdict")
    await project.run_until_idle()
    held = project.item(item.id)
    assert held.stage is Stage.QA and held.state.hold is Hold.BLOCKED
    assert "QA gave no usable verdict" in (held.state.hold_reason or "")


async def test_human_qa_waits_for_a_person_and_approval_merges(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure(qa_mode="human")
    item = project.add("Needs a human")
    orch = await project.run_until_idle()
    assert project.stage(item.id) is Stage.QA  # idle: nothing can move without a person
    await orch.act(item.id, Trigger.QA_PASSED, "ann", "looks right")
    await project.run_until_idle()
    assert project.stage(item.id) is Stage.DONE
    approval = [e for e in project.store.events_after(0) if e.trigger == "qa_passed"]
    assert approval[0].actor == "ann" and approval[0].reason == "looks right"


async def test_dependencies_and_priority_decide_the_order(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure(concurrency={"coder": 1})
    low = project.add("Low", priority=1)
    high = project.add("High", priority=5)
    after = project.add("After low", depends_on=[low.id], priority=9)
    await project.run_until_idle()
    starts = [e.item_id for e in project.store.events_after(0) if e.trigger == "start"]
    assert starts == [high.id, low.id, after.id]


async def test_frozen_and_held_items_are_left_alone(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    frozen = project.add("Frozen", frozen=True)
    held = project.add("Held")
    project.store.transition(held.id, Trigger.BLOCK, "ann", facts=Facts(reason="wait"))
    await project.run_until_idle()
    assert project.stage(frozen.id) is Stage.BACKLOG and project.stage(held.id) is Stage.BACKLOG
    assert project.store.runs() == []


async def test_a_person_with_conflicting_local_changes_on_the_base_branch_gets_a_hold_not_a_clobber(
    project: Project,
) -> None:
    project.agent("coder", [commit_file("README.md", "# changed by the agent\n")])
    project.configure()
    (project.root / "README.md").write_text("# my unsaved edit\n")  # the person's work, uncommitted
    item = project.add("Touch the readme")
    orch = await project.run_until_idle()
    held = project.item(item.id)
    assert held.stage is Stage.MERGE and held.state.hold is Hold.REVIEW_HOLD
    assert "README.md" in (held.state.hold_reason or "")
    assert (project.root / "README.md").read_text() == "# my unsaved edit\n"
    assert project.base_log() == ["initial"]
    git(project.root, "checkout", "--", "README.md")  # the person puts their edit away
    await orch.act(item.id, Trigger.RELEASE, "ann")
    await project.run_until_idle()
    assert project.stage(item.id) is Stage.DONE
    assert (project.root / "README.md").read_text() == "# changed by the agent\n"


async def test_a_done_item_is_archived_after_the_delay_and_its_worktree_pruned(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure(archive_after_s=0)
    item = project.add("Archive me")
    await project.run_until_idle()  # the archive timer is due at once
    assert project.stage(item.id) is Stage.ARCHIVED
    assert not (project.paths.worktrees_dir / item.name).exists()
    assert "gangline/1-archive-me" not in git(project.root, "branch", "--list")


async def test_a_scheduled_start_waits_for_its_time_even_across_a_restart(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    item = project.add("Tonight")
    at = project.store.clock() + 1.0
    project.orchestrator().schedule_start(item.id, at, "ann")  # this server goes away unused
    await project.run_until_idle()  # a new one honours the stored time
    [start] = [e for e in project.store.events_after(0) if e.trigger == "start"]
    assert start.at >= at and project.stage(item.id) is Stage.DONE


async def test_a_coder_whose_cli_is_missing_blocks_the_item_with_the_reason_and_no_retries(project: Project) -> None:
    project.add_agent({"name": "coder", "cli": "claude", "command": "/nonexistent/claude"})
    project.configure()
    item = project.add("No agent")
    await project.run_until_idle()
    held = project.item(item.id)
    assert held.state.hold is Hold.BLOCKED
    assert held.state.hold_reason == "agent profile 'coder': CLI binary '/nonexistent/claude' does not exist"
    [run] = project.store.runs(item.id)
    assert run.outcome is RunOutcome.CRASHED and not run.live


async def test_viewers_wait_for_the_next_change_and_a_timeout_bounds_the_wait(project: Project) -> None:
    project.agent("coder", [WRITE])
    project.configure()
    orch = project.orchestrator()
    seen = await orch.wait_changed(0, timeout_s=0.01)  # nothing happened: the bound ends the wait
    waiters = [asyncio.create_task(orch.wait_changed(seen, timeout_s=30)) for _ in range(3)]
    await asyncio.sleep(0)  # let them start waiting
    orch.add_item(ItemDraft(title="wake them"), "ann")
    versions = await asyncio.gather(*waiters)
    assert min(versions) > seen and versions == [orch.version] * 3


async def test_a_person_who_stops_a_coder_keeps_its_session_for_when_they_unblock(project: Project) -> None:
    gate = project.scenarios / "go"
    project.agent("coder", [[{"say": "working"}, {"wait_for_file": str(gate), "timeout_s": 60}], WRITE])
    project.configure(gates=[GATE_HAS_WORK])
    item = project.add("Stop me")
    orch = project.orchestrator()
    serving = asyncio.create_task(orch.serve(until_idle=True))
    seen = 0
    while not project.store.runs(item.id, live_only=True) or not project.store.runs(item.id)[0].session_id:
        seen = await orch.wait_changed(seen, timeout_s=10)
    await orch.act(item.id, Trigger.BLOCK, "ann", "wrong direction")
    await asyncio.wait_for(serving, 30)
    held = project.item(item.id)
    [run] = project.store.runs(item.id)
    assert held.state.hold is Hold.BLOCKED and held.session_id == run.session_id and run.outcome is RunOutcome.STOPPED
    await project.orchestrator().act(item.id, Trigger.UNBLOCK, "ann")
    await project.run_until_idle()
    assert project.stage(item.id) is Stage.DONE
    assert project.store.runs(item.id)[1].resumed_session == run.session_id


async def test_a_person_committing_on_the_base_during_the_merge_keeps_their_commit_and_the_item_lands_once(
    project: Project,
) -> None:
    # The second run of the gate is the merge workspace's: it is then that a person commits on main.
    person = (
        'n=$(cat "$COUNT" 2>/dev/null || echo 0); echo $((n + 1)) > "$COUNT"; '
        'if [ "$n" = 1 ]; then printf "mine\\n" > "$ROOT/person.txt" && git -C "$ROOT" add person.txt && '
        'git -C "$ROOT" -c user.name=Ann -c user.email=ann@example.invalid commit --quiet -m "by a person"; fi'
    )
    project.agent("coder", [WRITE])
    project.configure(gates=[("person", person)], sandbox="off")  # the gate plays a person, outside any sandbox
    count = project.root.parent / "gate-runs"
    item = project.add("Merge while a person commits")
    with pytest.MonkeyPatch.context() as env:  # the gate's shell reads these two
        env.setenv("COUNT", str(count))
        env.setenv("ROOT", str(project.root))
        await project.run_until_idle()
    assert project.stage(item.id) is Stage.DONE
    assert project.base_log() == ["Merge while a person commits (#1)", "by a person", "initial"]
    assert project.base_file("person.txt") == "mine" and project.base_file(f"work/{item.slug}.txt") == "done by 1"
    assert int(count.read_text()) >= 3  # squashed again onto the person's commit and gated again


async def test_a_worktree_deleted_by_hand_after_a_commit_is_recreated_from_its_branch_and_the_work_lands(
    project: Project,
) -> None:
    gone = [*WRITE, {"run": 'touch scratch; here="$PWD"; cd / && rm -rf "$here"'}, {"crash": "SIGKILL"}]
    project.agent("coder", [gone, [{"say": "picking up where I was"}]])
    project.configure(gates=[GATE_HAS_WORK])
    item = project.add("Lose my checkout")
    await project.run_until_idle()
    assert project.stage(item.id) is Stage.DONE
    assert project.base_file(f"work/{item.slug}.txt") == "done by 1"
    tree = project.paths.worktrees_dir / item.name
    assert tree.is_dir() and not (tree / "scratch").exists()  # really gone, then put back from the branch
    assert project.store.runs(item.id)[0].outcome is RunOutcome.CRASHED


async def test_without_a_server_for_nodes_a_profile_that_needs_a_node_label_holds_its_item_saying_so(
    project: Project,
) -> None:
    project.agent("coder", [WRITE], node_labels=["gpu"])
    project.configure(nodes={"server_agents": False})
    item = project.add("Needs a GPU")
    await project.run_until_idle()  # no server: the orchestrator runs what it can itself, and returns
    held = project.item(item.id)
    assert held.state.hold is Hold.BLOCKED
    assert held.state.hold_reason == (
        "agent coder node_labels: its agents run only on build nodes labelled gpu; serve the project "
        "(gangline serve) for nodes to reach it"
    )
    assert project.store.runs(item.id) == []  # nothing was started here in its place


async def test_without_a_server_for_nodes_the_orchestrator_runs_agents_itself_whatever_server_agents_says(
    project: Project,
) -> None:
    project.agent("coder", [WRITE])
    project.configure(nodes={"server_agents": False}, gates=[GATE_HAS_WORK])
    item = project.add("Here it is")
    await project.run_until_idle()
    assert project.stage(item.id) is Stage.DONE
    assert [r.node_id for r in project.store.runs(item.id)] == [None]


async def test_a_driver_whose_lock_check_hangs_stops_driving_within_two_intervals() -> None:
    import threading

    from gangline.core.errors import ServerLockedError
    from gangline.pipeline.restart import fenced

    released = threading.Event()  # the check hangs, as a query on a cut connection does, until the test ends

    def hanging() -> bool:
        released.wait(60)
        return True

    try:
        with pytest.raises(ServerLockedError, match=r"did not answer within 0\.2 s"):
            async with asyncio.timeout(10):
                await fenced(hanging, every_s=0.2)
        with pytest.raises(ServerLockedError, match="lost the database's driver lock"):
            async with asyncio.timeout(10):
                await fenced(lambda: False, every_s=0.2)
    finally:
        released.set()
