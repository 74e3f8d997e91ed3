import pytest

from gangline.core.events import RateLimit, Result, RunOutcome
from gangline.core.outcome import decide

OK = Result(subtype="success", is_error=False)
ERR = Result(subtype="success", is_error=True, api_error_status=529, result="API Error: 529 Overloaded")
HARD = RateLimit(status="rejected", hard_block=True, resets_at=1.0, limit_type="five_hour")


@pytest.mark.parametrize(
    ("kwargs", "outcome", "reason_part"),
    [
        ({"result": OK, "returncode": 0}, RunOutcome.SUCCEEDED, "completed"),
        ({"result": OK, "returncode": 1}, RunOutcome.FAILED, "exited with code 1"),
        ({"result": ERR, "returncode": 1}, RunOutcome.FAILED, "API status 529"),
        ({"result": ERR, "returncode": 1, "hard_limit": HARD}, RunOutcome.RATE_LIMITED, "five_hour"),
        (
            {"returncode": 1, "session_started": False},
            RunOutcome.REFUSED,
            "exited with code 1 before starting a session, saying: it printed nothing",
        ),
        ({"returncode": -9, "session_started": False}, RunOutcome.CRASHED, "killed by SIGKILL before starting"),
        ({"returncode": -9, "session_started": True}, RunOutcome.CRASHED, "killed by SIGKILL without a result"),
        ({"returncode": 0, "session_started": True, "last_lines": ["boom"]}, RunOutcome.CRASHED, "last output: boom"),
        ({"returncode": -15, "killed_for": (RunOutcome.STALLED, "no output")}, RunOutcome.STALLED, "no output"),
        ({"result": OK, "returncode": 0, "killed_for": (RunOutcome.STOPPED, "asked")}, RunOutcome.STOPPED, "asked"),
    ],
)
def test_outcome_table(kwargs: dict, outcome: RunOutcome, reason_part: str) -> None:
    args = {
        "killed_for": None,
        "returncode": None,
        "session_started": True,
        "result": None,
        "hard_limit": None,
        "last_lines": [],
    }
    verdict = decide(**{**args, **kwargs})
    assert verdict.outcome is outcome
    assert reason_part in verdict.reason


def test_a_refusal_names_what_the_cli_said_and_the_fix_gangline_knows() -> None:
    root = "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons"
    verdict = decide(
        killed_for=None, returncode=1, session_started=False, result=None, hard_limit=None, last_lines=[root]
    )
    assert verdict.outcome is RunOutcome.REFUSED
    said = f"the agent CLI refused to start: it exited with code 1 before starting a session, saying: {root}. Fix: "
    assert verdict.reason.startswith(said)
    assert "install bubblewrap" in verdict.reason
    gemini = decide(
        killed_for=None, returncode=41, session_started=False, result=None, hard_limit=None,
        last_lines=["Invalid auth method selected."],
    )  # fmt: skip
    assert "exited with code 41" in gemini.reason and "GEMINI_API_KEY" in gemini.reason
    unknown = decide(
        killed_for=None, returncode=3, session_started=False, result=None, hard_limit=None, last_lines=["odd"]
    )
    assert unknown.reason.endswith("saying: odd")  # no fix is made up
