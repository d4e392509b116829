"""The turn machine (machine.py): every event in every phase, and properties of event orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from codex_broker.libs.records import TurnState
from codex_broker.orchestrator import machine as m

NOW = 1_000_000
RULES = m.Rules(during_run="steer", queue_limit=3, debounce_ms=0)
DEBOUNCED = m.Rules(during_run="steer", queue_limit=3, debounce_ms=300)
QUEUEING = m.Rules(during_run="queue", queue_limit=3, debounce_ms=0)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def idle(queued: int = 0) -> m.Session:
    return m.Session(TurnState(), queued)


def running(run_id: str = "r1", *, active: bool = True, queued: int = 0) -> m.Session:
    turn = TurnState(state="running", active_run_id=run_id, turn_active=active, run_started_ms=NOW)
    return m.Session(turn, queued)


def debouncing(queued: int, *, waiting: bool = False) -> m.Session:
    return m.Session(TurnState(state="debouncing", waiting=waiting), queued)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


# ---- messages -----------------------------------------------------------------------------------


def test_a_message_into_an_idle_session_starts_at_once_with_no_timer() -> None:
    decision = m.decide(idle(), m.MessageIn(NOW), RULES)
    assert decision.effects == (m.StartRun(direct=True),)
    assert decision.session == idle()  # the admission decides the next state


def test_an_opted_in_debounce_queues_and_schedules() -> None:
    decision = m.decide(idle(), m.MessageIn(NOW), DEBOUNCED)
    assert decision.effects == (m.Enqueue(), m.ScheduleStart(NOW + 300))
    assert decision.turn.state == "debouncing" and decision.session.queued == 1


def test_a_message_behind_queued_ones_joins_them_and_starts_them_all() -> None:
    decision = m.decide(debouncing(2, waiting=True), m.MessageIn(NOW), RULES)
    assert decision.effects == (
        m.Enqueue(),
        m.ScheduleStart(NOW + m.START_SAFETY_MS, nudge=False),
        m.StartRun(direct=False),
    )
    assert decision.session.queued == 3


@pytest.mark.parametrize(
    ("session", "event", "rules", "effects", "queued"),
    [
        # a started, claimed turn: the message steers it
        (running(), m.MessageIn(NOW, run_claimed=True), RULES, (m.SteerIn(),), 0),
        # unclaimed or being stopped: the next turn takes it
        (running(), m.MessageIn(NOW, run_claimed=False), RULES, (m.Enqueue(),), 1),
        (running(), m.MessageIn(NOW, run_claimed=True, run_stopping=True), RULES, (m.Enqueue(),), 1),
        # the turn has not started yet: queued, steered in when it starts
        (running(active=False), m.MessageIn(NOW, run_claimed=True), RULES, (m.Enqueue(),), 1),
        # MESSAGE_DURING_RUN=queue, and job reports, never steer
        (running(), m.MessageIn(NOW, run_claimed=True), QUEUEING, (m.Enqueue(),), 1),
        (running(), m.MessageIn(NOW, steerable=False, run_claimed=True), RULES, (m.Enqueue(),), 1),
        # the bound
        (running(active=False, queued=3), m.MessageIn(NOW), RULES, (m.Say("busy"),), 3),
        (debouncing(3), m.MessageIn(NOW), RULES, (m.Say("busy"),), 3),
        # a steer has no bound: it does not wait in the queue
        (running(queued=3), m.MessageIn(NOW, run_claimed=True), RULES, (m.SteerIn(),), 3),
    ],
)
def test_a_message_during_a_run(
    session: m.Session, event: m.MessageIn, rules: m.Rules, effects: tuple[m.Effect, ...], queued: int
) -> None:
    decision = m.decide(session, event, rules)
    assert decision.effects == effects
    assert decision.session.queued == queued
    assert decision.turn == session.turn  # a message never changes a running turn's state


def test_run_facts_are_read_only_when_they_can_matter() -> None:
    assert m.needs_run_facts(running(), RULES)
    assert not m.needs_run_facts(running(active=False), RULES)
    assert not m.needs_run_facts(running(), QUEUEING)
    assert not m.needs_run_facts(idle(), RULES)


# ---- starts, admission --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session", "tick", "effects", "phase"),
    [
        (debouncing(2), m.StartTick(NOW, due_ms=NOW), (m.StartRun(direct=False),), "debouncing"),
        (debouncing(2), m.StartTick(NOW, due_ms=None), (m.StartRun(direct=False),), "debouncing"),
        (debouncing(2), m.StartTick(NOW, due_ms=NOW + 1), (), "debouncing"),  # window moved on
        (running(queued=2), m.StartTick(NOW, due_ms=NOW), (m.CancelStart(),), "running"),
        (debouncing(0), m.StartTick(NOW, due_ms=NOW), (m.LeaveLine(), m.CancelStart()), "idle"),
        (idle(0), m.StartTick(NOW, due_ms=NOW), (m.CancelStart(),), "idle"),
    ],
)
def test_the_start_tick(
    session: m.Session, tick: m.StartTick, effects: tuple[m.Effect, ...], phase: str
) -> None:
    decision = m.decide(session, tick, RULES)
    assert decision.effects == effects
    assert decision.turn.state == phase


def test_an_admitted_run_takes_the_queue_and_runs() -> None:
    decision = m.decide(debouncing(2, waiting=True), m.RunAdmitted("r9", NOW, flushed=2), RULES)
    assert decision.effects == (m.TakeQueued(2), m.CancelStart())
    assert decision.turn == TurnState(state="running", active_run_id="r9", run_started_ms=NOW)
    assert decision.session.queued == 0


def test_a_direct_start_touches_no_queue() -> None:
    decision = m.decide(idle(), m.RunAdmitted("r9", NOW, flushed=0), RULES)
    assert decision.effects == ()
    assert decision.turn.running and decision.turn.active_run_id == "r9"


def test_a_refused_slot_puts_the_session_in_line() -> None:
    direct = m.decide(idle(), m.SlotRefused(message_pending=True), RULES)
    assert direct.effects == (m.CancelStart(), m.Enqueue())
    assert direct.turn == TurnState(state="debouncing", waiting=True) and direct.session.queued == 1
    queued = m.decide(debouncing(2), m.SlotRefused(message_pending=False), RULES)
    assert queued.effects == (m.CancelStart(),) and queued.session.queued == 2


def test_nothing_to_start_goes_idle() -> None:
    decision = m.decide(debouncing(0, waiting=True), m.NothingToStart(), RULES)
    assert decision.turn == TurnState()
    assert decision.effects == (m.LeaveLine(), m.CancelStart())


@pytest.mark.parametrize(
    ("active", "max_active", "ahead", "expected"),
    [(0, 0, 5, True), (3, 4, 0, True), (3, 4, 1, False), (4, 4, 0, False)],
)
def test_fair_admission(active: int, max_active: int, ahead: int, expected: bool) -> None:
    assert m.admitted(active, ahead, max_active) is expected


# ---- the turn, its answers, its end ---------------------------------------------------------------


def test_turn_started_steers_in_what_waited() -> None:
    waiting = running(active=False, queued=2)
    fact = m.TurnStarted("r1", run_claimed=True, run_stopping=False, steerable_queued=2)
    decision = m.decide(waiting, fact, RULES)
    assert decision.effects == (m.SteerQueued(),)
    assert decision.turn.turn_active and decision.session.queued == 0
    queueing = m.decide(waiting, fact, QUEUEING)
    assert queueing.effects == () and queueing.session.queued == 2
    stopping = m.TurnStarted("r1", run_claimed=True, run_stopping=True, steerable_queued=2)
    assert m.decide(waiting, stopping, RULES).effects == ()


def test_a_late_turn_started_of_another_run_changes_nothing() -> None:
    session = running("r2", active=False)
    fact = m.TurnStarted("r1", run_claimed=True, run_stopping=False, steerable_queued=0)
    assert m.decide(session, fact, RULES) == m.Decision(session)


def test_answers_chain_in_order_across_runs() -> None:
    session = m.Session(running().turn.replace(last_final_action="final:r0"))
    first = m.decide(session, m.AnswerReady("r1", seq=4), RULES)
    assert first.effects == (m.PostInOrder("answer:r1:4", after="final:r0"),)
    ended = m.decide(first.session, m.RunEnded("r1", NOW, "answer:r1:last"), RULES)
    assert ended.effects == (m.PostInOrder("answer:r1:last", after="answer:r1:4"),)
    assert ended.turn.last_final_action == "answer:r1:last" and ended.turn.phase == "idle"


def test_a_runs_own_final_is_not_waited_for() -> None:
    session = m.Session(running().turn.replace(last_final_action="final:r1"))
    decision = m.decide(session, m.RunEnded("r1", NOW, "final:r1"), RULES)
    assert decision.effects == (m.PostInOrder("final:r1", after=None),)


@pytest.mark.parametrize(
    ("rules", "queued", "effects", "phase"),
    [
        (RULES, 0, (), "idle"),
        (
            RULES,
            2,
            (m.ScheduleStart(NOW + m.START_SAFETY_MS, nudge=False), m.StartRun(direct=False)),
            "debouncing",
        ),
        (DEBOUNCED, 2, (m.ScheduleStart(NOW + 300),), "debouncing"),
    ],
)
def test_the_end_of_a_run_moves_the_session_on(
    rules: m.Rules, queued: int, effects: tuple[m.Effect, ...], phase: str
) -> None:
    decision = m.decide(running(queued=queued), m.RunEnded("r1", NOW, "final:r1"), rules)
    assert decision.effects[1:] == effects
    assert decision.turn.phase == phase and not decision.turn.active_run_id
    assert not decision.turn.turn_active and decision.turn.run_started_ms is None


def test_the_end_of_a_run_the_session_left_only_posts() -> None:
    decision = m.decide(running("r2", queued=1), m.RunEnded("r1", NOW, "final:r1"), RULES)
    assert [type(e) for e in decision.effects] == [m.PostInOrder]
    assert decision.turn.active_run_id == "r2" and decision.turn.running


# ---- steers put back, stop, retry ----------------------------------------------------------------


def test_a_rejected_steer_keeps_its_place_among_later_messages() -> None:
    fact = m.SteerRejected(at(5), run_stopping=False, queued_arrivals=(at(1), at(7), at(9)), now_ms=NOW)
    decision = m.decide(running(queued=3), fact, RULES)
    assert decision.effects == (m.Requeue(before=1),)
    assert decision.session.queued == 4


@pytest.mark.parametrize(
    ("arrivals", "message", "before"),
    [((), 5, None), ((1, 2), 5, None), ((5,), 5, None), ((1, 7, 9), 5, 1), ((7, 9), 5, 0)],
)
def test_insert_position(arrivals: tuple[int, ...], message: int, before: int | None) -> None:
    assert m.insert_position(tuple(at(a) for a in arrivals), at(message)) == before


def test_a_rejected_steer_of_an_ended_turn_starts_one() -> None:
    fact = m.SteerRejected(at(5), run_stopping=False, queued_arrivals=(), now_ms=NOW)
    decision = m.decide(idle(), fact, RULES)
    assert decision.effects == (
        m.Requeue(None),
        m.ScheduleStart(NOW + m.START_SAFETY_MS, nudge=False),
        m.StartRun(direct=False),
    )
    assert m.decide(idle(), fact, DEBOUNCED).effects == (m.Requeue(None), m.ScheduleStart(NOW + 300))


def test_a_rejected_steer_of_a_stopped_turn_is_dropped() -> None:
    fact = m.SteerRejected(at(5), run_stopping=True, queued_arrivals=(), now_ms=NOW)
    assert m.decide(running(), fact, RULES).effects == (m.DropSteer(),)
    redelivered = m.SteerRejected(None, run_stopping=False, queued_arrivals=(), now_ms=NOW)
    assert m.decide(running(), redelivered, RULES).effects == ()


@pytest.mark.parametrize(
    ("session", "said", "phase"),
    [
        (running(queued=2), None, "running"),
        (debouncing(2, waiting=True), "stopped", "idle"),
        (idle(0), "nothing_running", "idle"),
    ],
)
def test_stop(session: m.Session, said: str | None, phase: str) -> None:
    decision = m.decide(session, m.Stop(), RULES)
    assert decision.effects[:3] == (m.DropQueue(), m.CancelStart(), m.LeaveLine())
    assert decision.session.queued == 0 and decision.turn.phase == phase
    if said is None:
        assert decision.effects[3:] == (m.Interrupt("r1"),)  # the run's end says "Stopped."
    else:
        assert decision.effects[3:] == (m.Say(said),)  # type: ignore[arg-type]


def test_retry_starts_an_idle_session_without_a_debounce() -> None:
    decision = m.decide(idle(), m.Retry(2, NOW), DEBOUNCED)
    assert decision.effects == (
        m.RestoreInputs(),
        m.ScheduleStart(NOW + m.START_SAFETY_MS, nudge=False),
        m.StartRun(direct=False),
    )
    assert decision.session.queued == 2
    assert m.decide(running(), m.Retry(2, NOW), RULES).effects == (m.RestoreInputs(),)


# ---- properties: any order of events --------------------------------------------------------------


class TurnWorld(RuleBasedStateMachine):
    """The machine driven the way the orchestrator drives it, with a tiny model of the rest (run
    slots, the runner, ended runs, posted answers), checking what must hold whatever the order."""

    def __init__(self) -> None:
        super().__init__()
        self.session = idle()
        self.rules = RULES
        self.slots = 1
        self.runs = 0
        self.ended: set[str] = set()
        self.claimed: set[str] = set()
        self.posted: list[m.PostInOrder] = []
        self.pending_start = False
        self.answer_seq = 0

    def step(self, event: m.Event) -> m.Decision:
        decision = m.decide(self.session, event, self.rules)
        assert all(not isinstance(e, m.StartRun) for e in decision.effects) or not decision.turn.running
        self.session = decision.session
        for effect in decision.effects:
            if isinstance(effect, m.PostInOrder):
                self.posted.append(effect)
            if isinstance(effect, m.StartRun):
                self.start(direct=effect.direct)
        return decision

    def start(self, *, direct: bool) -> None:
        if self.session.turn.running:
            return
        if not direct and self.session.queued == 0:
            self.step(m.NothingToStart())
            return
        if self.slots <= 0:
            self.step(m.SlotRefused(message_pending=direct))
            return
        self.slots -= 1
        self.runs += 1
        self.step(m.RunAdmitted(f"r{self.runs}", NOW, flushed=0 if direct else self.session.queued))

    @rule(steerable=st.booleans())
    def message(self, steerable: bool) -> None:
        run_id = self.session.turn.active_run_id
        self.step(m.MessageIn(NOW, steerable=steerable, run_claimed=run_id in self.claimed))

    @rule()
    def tick(self) -> None:
        self.step(m.StartTick(NOW))

    @precondition(lambda self: self.session.turn.running)
    @rule(claim=st.booleans())
    def turn_started(self, claim: bool) -> None:
        run_id = self.session.turn.active_run_id
        if claim:
            self.claimed.add(run_id)
        fact = m.TurnStarted(
            run_id, run_claimed=run_id in self.claimed, run_stopping=False, steerable_queued=0
        )
        self.step(fact)

    @precondition(lambda self: self.session.turn.turn_active)
    @rule()
    def answer_before_a_steer(self) -> None:
        self.answer_seq += 1
        self.step(m.AnswerReady(self.session.turn.active_run_id, self.answer_seq))

    @precondition(lambda self: self.session.turn.running)
    @rule(lost=st.booleans())
    def run_ends(self, lost: bool) -> None:
        run_id = self.session.turn.active_run_id
        self.ended.add(run_id)
        self.slots += 1
        self.step(m.RunEnded(run_id, NOW, f"final:{run_id}"))
        assert self.session.turn.active_run_id != run_id

    @precondition(lambda self: bool(self.ended))
    @rule(data=st.data())
    def a_late_event_of_an_ended_run(self, data: st.DataObject) -> None:
        run_id = data.draw(st.sampled_from(sorted(self.ended)))
        before = self.session
        for late in (
            m.TurnStarted(
                run_id, run_claimed=True, run_stopping=False, steerable_queued=before.queued, ended=True
            ),
            m.AnswerReady(run_id, 99, ended=True),
        ):
            assert self.step(late) == m.Decision(before)  # lost-then-late: nothing at all

    @rule()
    def stop(self) -> None:
        self.step(m.Stop())

    @invariant()
    def consistent(self) -> None:
        turn = self.session.turn
        assert self.session.queued >= 0
        assert turn.running == bool(turn.active_run_id)
        assert not turn.turn_active or turn.running
        assert turn.active_run_id not in self.ended

    @invariant()
    def answers_chain(self) -> None:
        """Each answer waits for the one posted before it; only the first waits for none."""
        assert all(post.after is None for post in self.posted[:1])
        for previous, current in zip(self.posted, self.posted[1:], strict=False):
            assert current.after == previous.action_id


TurnWorld.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
test_any_order_of_events = TurnWorld.TestCase


def test_steer_after_answer_posts_both_answers_in_order() -> None:
    """Issue 16 item 2: the answer Codex gave before a steer took over the turn is posted, then
    the turn's last answer after it."""
    session = running()
    session = m.decide(session, m.MessageIn(NOW, run_claimed=True), RULES).session  # the steer
    first = m.decide(session, m.AnswerReady("r1", seq=7), RULES)
    last = m.decide(first.session, m.RunEnded("r1", NOW, "answer:r1:last"), RULES)
    posts = [e for d in (first, last) for e in d.effects if isinstance(e, m.PostInOrder)]
    assert posts == [m.PostInOrder("answer:r1:7", None), m.PostInOrder("answer:r1:last", "answer:r1:7")]
