from gangline.agents.framing import LineFramer
from gangline.core.events import Malformed


def test_complete_lines_come_out_and_a_partial_line_waits_for_its_newline() -> None:
    framer = LineFramer(1024)
    assert framer.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert framer.feed(b":2}\n") == [b'{"b":2}']


def test_blank_lines_and_bare_carriage_returns_are_skipped() -> None:
    assert LineFramer(1024).feed(b"\n\r\nx\n") == [b"x"]


def test_a_line_over_the_limit_becomes_one_malformed_event_and_the_next_line_survives() -> None:
    framer = LineFramer(1024)
    out = framer.feed(b"A" * 600)
    out += framer.feed(b"B" * 600)
    out += framer.feed(b"C" * 5000)
    out += framer.feed(b"D\nnext\n")
    assert len(out) == 2
    bad, good = out
    assert isinstance(bad, Malformed)
    assert bad.size == 600 + 600 + 5000 + 1
    assert bad.head.startswith("A" * 512)
    assert good == b"next"


def test_an_oversized_line_in_a_single_chunk_is_malformed() -> None:
    out = LineFramer(1024).feed(b"x" * 2000 + b"\nok\n")
    assert isinstance(out[0], Malformed) and out[0].size == 2000
    assert out[1] == b"ok"


def test_flush_returns_the_unterminated_last_line() -> None:
    framer = LineFramer(1024)
    assert framer.feed(b"tail without newline") == []
    assert framer.flush() == [b"tail without newline"]
    assert framer.flush() == []
