"""Markdown → mrkdwn conversion and splitting at Slack's limits, without a network."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from codex_broker.ingress_slack.mrkdwn import FENCE, split_message, to_mrkdwn, trim


def test_markdown_constructs_become_mrkdwn() -> None:
    md = (
        "# Title\n\nSome **bold**, *italic*, ~~gone~~ and [a link](https://x.y).\n\n"
        "- one\n- **two**\n\n1. first"
    )
    out = to_mrkdwn(md)
    assert "*Title*" in out
    assert "*bold*" in out and "_italic_" in out and "~gone~" in out
    assert "<https://x.y|a link>" in out
    assert "•   one" in out and "•   *two*" in out
    assert "1.  first" in out


def test_code_is_kept_verbatim_but_escaped_so_it_cannot_ping() -> None:
    out = to_mrkdwn("run `echo <@U1> & go`\n\n```python\nif a < b and c > d:\n    ping('<!channel>')\n```")
    assert "`echo &lt;@U1&gt; &amp; go`" in out
    assert "```\nif a &lt; b and c &gt; d:\n    ping('&lt;!channel&gt;')\n```" in out


def test_plain_text_specials_are_escaped() -> None:
    assert to_mrkdwn("1 < 2 & 3 > 2") == "1 &lt; 2 &amp; 3 &gt; 2"


def test_short_text_is_one_piece() -> None:
    assert split_message("hello\nworld") == ["hello\nworld"]


def test_long_text_splits_on_lines_in_order() -> None:
    lines = [f"line {i} " + "x" * 50 for i in range(200)]
    pieces = split_message("\n".join(lines), 1000)
    assert all(len(p) <= 1000 for p in pieces)
    assert "\n".join(pieces).split("\n") == lines


def test_code_block_that_fits_is_not_split() -> None:
    code = FENCE + "\n" + "\n".join(f"code line {i}" for i in range(20)) + "\n" + FENCE
    text = "a" * 900 + "\n" + code
    pieces = split_message(text, 1000)
    assert pieces == ["a" * 900, code]


def test_long_code_block_is_closed_and_reopened() -> None:
    code = FENCE + "\n" + "\n".join(f"code line {i:03d}" for i in range(300)) + "\n" + FENCE
    pieces = split_message("intro\n" + code + "\noutro", 500)
    assert all(len(p) <= 500 for p in pieces)
    for piece in pieces:
        assert piece.count(FENCE) % 2 == 0, piece
    body = [line for p in pieces for line in p.split("\n") if line.startswith("code line")]
    assert body == [f"code line {i:03d}" for i in range(300)]
    assert pieces[0].startswith("intro") and pieces[-1].endswith("outro")


def test_a_single_overlong_line_is_cut() -> None:
    pieces = split_message("word " * 1000, 700)
    assert all(len(p) <= 700 for p in pieces)
    assert "".join(p if p.endswith(" ") else p + " " for p in pieces).split() == ["word"] * 1000


def test_trim_keeps_head_or_tail_within_the_limit() -> None:
    text = "\n".join(str(i) for i in range(5000))
    head, tail = trim(text, 100), trim(text, 100, keep="tail")
    assert len(head) <= 100 and head.startswith("0\n1\n") and head.endswith("…")
    assert len(tail) <= 100 and tail.startswith("…") and tail.endswith("4999")
    cut_code = trim(FENCE + "\n" + "x\n" * 200 + FENCE, 50)
    assert len(cut_code) <= 50 and cut_code.count(FENCE) == 2


lines_strategy = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n`"), max_size=80),
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(lines_strategy, st.integers(min_value=100, max_value=600))
def test_split_never_exceeds_limit_and_keeps_lines_in_order(lines: list[str], limit: int) -> None:
    pieces = split_message("\n".join(lines), limit)
    assert all(len(p) <= limit for p in pieces)
    kept = [line for p in pieces for line in p.split("\n") if line.strip()]
    assert kept == [line for line in lines if line.strip()]
