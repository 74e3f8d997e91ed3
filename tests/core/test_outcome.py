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
            RunOutcome.CRASHED,
            "before starting a session; it printed nothing",
        ),
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
