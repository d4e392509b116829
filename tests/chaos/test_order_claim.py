"""The chaos run's order claim itself (chaos.answers_follow_acceptance), on the cases the runs met."""

from __future__ import annotations

from tests.chaos.chaos import answers_follow_acceptance

ACCEPTED = ["t1", "t2", "t3", "t4"]


def test_answers_in_acceptance_order_hold() -> None:
    assert answers_follow_acceptance([["t1"], ["t2"], ["t3"], ["t4"]], ACCEPTED)
    assert answers_follow_acceptance([["t1", "t2"], ["t3", "t4"]], ACCEPTED)  # queued together


def test_a_message_answered_as_history_of_a_later_one_is_one_step() -> None:
    """Seed 707: t1's delivery died with an ingress, t2 was accepted first and its turn carried
    t1 as thread history; t1's late delivery was then dropped as backfilled."""
    assert answers_follow_acceptance([["t1", "t2"], ["t3"], ["t4"]], ["t2", "t1", "t3", "t4"])


def test_an_answer_out_of_place_fails() -> None:
    assert not answers_follow_acceptance([["t1"], ["t3"], ["t2"], ["t4"]], ACCEPTED)
    assert not answers_follow_acceptance([["t1", "t3"], ["t2"]], ACCEPTED)  # merged out of place
    assert not answers_follow_acceptance([["t2"], ["t1"]], ACCEPTED)


def test_a_repeated_answer_is_judged_at_its_first_place() -> None:
    assert answers_follow_acceptance([["t1"], ["t2"], ["t1"], ["t3"]], ACCEPTED)
