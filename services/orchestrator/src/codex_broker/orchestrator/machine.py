"""A session's turn lifecycle as one pure step: `decide(session, event, rules) -> Decision`.

Every change of a session's turn state — idle → debouncing → running → idle, the MAX_ACTIVE_RUNS
line, where a message goes while a turn runs, which answer waits for which — is decided here
and nowhere else; turns.py reads the facts, calls `decide`, and applies the decision (the new
`TurnState` as one HSET/HDEL, the effects in the same pipeline). Nothing here does I/O or reads
a clock: time comes in with the event.

The rules (docs/architecture.md, "The turn state machine"):
- A message into an idle session starts its turn at once (no timer in between, unless
  DEBOUNCE_MS opts into one); during a turn it steers (MESSAGE_DURING_RUN=steer, once the turn
  started and a runner holds it) or queues; the queue has a bound (busy beyond it).
- Queued messages flush into the next turn as one input when the run ends; those that came
  before the turn started are steered in when it starts.
- A run the orchestrator ended (finished, stopped, reported lost) is over: a late event of it
  changes nothing — no answer, no start.
- Every answer of a thread waits for the thread's previous answer (across runs and ingress
  replicas), so answers reach the thread in the order Codex gave them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from codex_broker.libs.records import TurnState

DuringRun = Literal["steer", "queue"]
START_SAFETY_MS = 5_000  # a start made now also gets a timer: it only guards against a crash


@dataclass(frozen=True)
class Rules:
    during_run: DuringRun = "steer"
    queue_limit: int = 20
    debounce_ms: int = 0


@dataclass(frozen=True)
class Session:
    turn: TurnState
    queued: int = 0  # messages waiting in the session's queue


# ---- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageIn:
    """A person's message (or a job's report) for the session, not yet stored anywhere."""

    now_ms: int
    steerable: bool = True  # a job report never steers: it waits for the next turn
    run_claimed: bool = False  # a runner holds the active run (read when `needs_run_facts`)
    run_stopping: bool = False  # a stop was requested for the active run


@dataclass(frozen=True)
class StartTick:
    """The start timer fired, or a freed run slot woke the session."""

    now_ms: int
    due_ms: float | None = None  # the timer's current due time (None: woken, not timed)


@dataclass(frozen=True)
class RunAdmitted:
    """A run slot was taken for `run_id`; its request goes out in this round trip."""

    run_id: str
    now_ms: int
    flushed: int  # queued messages the run takes (0: the arriving message, never queued)


@dataclass(frozen=True)
class SlotRefused:
    """No run slot: the session waits in line (a freed slot wakes it with a StartTick)."""

    message_pending: bool  # the refused start was for an arriving message: it is queued now


@dataclass(frozen=True)
class NothingToStart:
    """A start found no queued message (or no session record) after all."""


@dataclass(frozen=True)
class TurnStarted:
    run_id: str
    run_claimed: bool
    run_stopping: bool
    steerable_queued: int  # queued messages that may join the turn (people's, not job reports)
    ended: bool = False


@dataclass(frozen=True)
class AnswerReady:
    """A complete answer of the turn that a steer took over (`seq`: its place in the run)."""

    run_id: str
    seq: int
    ended: bool = False


@dataclass(frozen=True)
class RunEnded:
    """The run finished (completed, failed, interrupted) or was reported lost and fenced."""

    run_id: str
    now_ms: int
    last_action: str  # the action id of the run's last answer message (render decides it)


@dataclass(frozen=True)
class SteerRejected:
    """The runner could not steer a message in; it goes back to the queue in arrival order."""

    message: datetime | None  # its arrival; None: put back already (a redelivery)
    run_stopping: bool
    queued_arrivals: tuple[datetime, ...]
    now_ms: int


@dataclass(frozen=True)
class Stop:
    """`stop` (command or button): interrupt the active turn, drop what is queued."""


@dataclass(frozen=True)
class Retry:
    """A lost turn's Retry: its messages go back to the head of the queue."""

    count: int
    now_ms: int


Event = (
    MessageIn
    | StartTick
    | RunAdmitted
    | SlotRefused
    | NothingToStart
    | TurnStarted
    | AnswerReady
    | RunEnded
    | SteerRejected
    | Stop
    | Retry
)


# ---- effects ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enqueue:
    """The arriving message joins the queue's tail."""


@dataclass(frozen=True)
class Requeue:
    """A rejected steer's message goes back before queue index `before` (None: the tail)."""

    before: int | None


@dataclass(frozen=True)
class RestoreInputs:
    """A retried run's messages go back to the queue's head."""


@dataclass(frozen=True)
class SteerIn:
    """The arriving message joins the running turn."""


@dataclass(frozen=True)
class SteerQueued:
    """The turn started: the queued messages that may steer join it, oldest first."""


@dataclass(frozen=True)
class StartRun:
    """Take a run slot and publish a RunRequest: for the arriving message alone (`direct`), or
    for everything queued. The outcome comes back as RunAdmitted / SlotRefused / NothingToStart."""

    direct: bool


@dataclass(frozen=True)
class ScheduleStart:
    due_ms: int
    nudge: bool = True  # wake the timer now (False: a safety entry, found on its next pass)


@dataclass(frozen=True)
class CancelStart:
    pass


@dataclass(frozen=True)
class TakeQueued:
    """The admitted run took the first `count` queued messages: they leave the queue."""

    count: int


@dataclass(frozen=True)
class LeaveLine:
    """Out of the MAX_ACTIVE_RUNS line."""


@dataclass(frozen=True)
class DropQueue:
    pass


@dataclass(frozen=True)
class Interrupt:
    run_id: str


@dataclass(frozen=True)
class PostInOrder:
    """Post the event's answer once the thread's previous answer (`after`) is out."""

    action_id: str
    after: str | None


@dataclass(frozen=True)
class DropSteer:
    """A rejected steer of a stopped turn is dropped, like the queue the stop dropped."""


@dataclass(frozen=True)
class Say:
    """Tell the thread (or the person): `what` names the text (commands.py holds them)."""

    what: Literal["busy", "stopped", "nothing_running"]


Effect = (
    Enqueue
    | Requeue
    | RestoreInputs
    | SteerIn
    | SteerQueued
    | StartRun
    | ScheduleStart
    | CancelStart
    | TakeQueued
    | LeaveLine
    | DropQueue
    | Interrupt
    | PostInOrder
    | DropSteer
    | Say
)


@dataclass(frozen=True)
class Decision:
    session: Session
    effects: tuple[Effect, ...] = ()

    @property
    def turn(self) -> TurnState:
        return self.session.turn


# ---- the step -----------------------------------------------------------------------------------


def needs_run_facts(session: Session, rules: Rules) -> bool:
    """Does a message's decision depend on the active run's record (claimed? being stopped?)"""
    return session.turn.running and rules.during_run == "steer" and session.turn.turn_active


def decide(session: Session, event: Event, rules: Rules) -> Decision:
    """The session after `event`, and what must happen for it."""
    if isinstance(event, MessageIn):
        return _message(session, event, rules)
    if isinstance(event, StartTick):
        return _start_tick(session, event)
    if isinstance(event, RunAdmitted):
        return _admitted(session, event)
    if isinstance(event, SlotRefused):
        return _refused(session, event)
    if isinstance(event, NothingToStart):
        return _idle(session, queued=session.queued)
    if isinstance(event, TurnStarted):
        return _turn_started(session, event, rules)
    if isinstance(event, AnswerReady):
        return _answer(session, event)
    if isinstance(event, RunEnded):
        return _run_ended(session, event, rules)
    if isinstance(event, SteerRejected):
        return _steer_rejected(session, event, rules)
    if isinstance(event, Stop):
        return _stop(session)
    return _retry(session, event)


def _message(session: Session, event: MessageIn, rules: Rules) -> Decision:
    turn, queued = session.turn, session.queued
    if turn.running:
        if rules.during_run == "steer" and event.steerable and turn.turn_active:
            if event.run_claimed and not event.run_stopping:
                return Decision(session, (SteerIn(),))
            return _enqueued(session)  # unclaimed or being stopped: the next turn takes it
        if queued >= rules.queue_limit:
            return Decision(session, (Say("busy"),))
        return _enqueued(session)
    if queued >= rules.queue_limit:
        return Decision(session, (Say("busy"),))
    if queued == 0 and rules.debounce_ms <= 0:
        return Decision(session, (StartRun(direct=True),))  # straight to a RunRequest
    start = _next_start(event.now_ms, rules.debounce_ms)
    return _enqueued(session, turn.replace(state="debouncing"), *start)


def _next_start(now_ms: int, debounce_ms: int) -> tuple[Effect, ...]:
    """How a debouncing session's queue gets its turn: after the opted-in quiet window, or at
    once (with a safety timer, in case the start dies with this process)."""
    if debounce_ms > 0:
        return (ScheduleStart(now_ms + debounce_ms),)
    return (ScheduleStart(now_ms + START_SAFETY_MS, nudge=False), StartRun(direct=False))


def _enqueued(session: Session, turn: TurnState | None = None, *after: Effect) -> Decision:
    return Decision(Session(turn or session.turn, session.queued + 1), (Enqueue(), *after))


def _start_tick(session: Session, event: StartTick) -> Decision:
    if session.turn.running:
        return Decision(session, (CancelStart(),))  # its end schedules the next turn
    if session.queued == 0:
        if session.turn.phase == "debouncing":
            return _idle(session, queued=0)
        return Decision(session, (CancelStart(),))
    if event.due_ms is not None and event.due_ms > event.now_ms:
        return Decision(session)  # another message moved the quiet window on
    return Decision(session, (StartRun(direct=False),))


def _admitted(session: Session, event: RunAdmitted) -> Decision:
    turn = session.turn.replace(
        state="running",
        active_run_id=event.run_id,
        turn_active=False,
        run_started_ms=event.now_ms,
        waiting=False if event.flushed else session.turn.waiting,
    )
    effects: tuple[Effect, ...] = (TakeQueued(event.flushed), CancelStart()) if event.flushed else ()
    return Decision(Session(turn, max(0, session.queued - event.flushed)), effects)


def _refused(session: Session, event: SlotRefused) -> Decision:
    turn = session.turn.replace(state="debouncing", waiting=True)
    effects: tuple[Effect, ...] = (CancelStart(),)
    queued = session.queued
    if event.message_pending:
        effects, queued = (CancelStart(), Enqueue()), queued + 1
    return Decision(Session(turn, queued), effects)


def _idle(session: Session, *, queued: int) -> Decision:
    turn = session.turn.replace(
        state="idle", active_run_id="", waiting=False, turn_active=False, run_started_ms=None
    )
    return Decision(Session(turn, queued), (LeaveLine(), CancelStart()))


def _turn_started(session: Session, event: TurnStarted, rules: Rules) -> Decision:
    if event.ended or session.turn.active_run_id != event.run_id:
        return Decision(session)  # a late event of a run the session moved on from
    turn = session.turn.replace(turn_active=True)
    steer = (
        rules.during_run == "steer"
        and event.run_claimed
        and not event.run_stopping
        and event.steerable_queued > 0
    )
    effects: tuple[Effect, ...] = (SteerQueued(),) if steer else ()
    queued = session.queued - event.steerable_queued if steer else session.queued
    return Decision(Session(turn, queued), effects)


def _after(previous: str, run_id: str) -> str | None:
    """The answer a new answer of `run_id` waits for (none: the first, or the run's own final)."""
    return previous if previous and previous != f"final:{run_id}" else None


def _answer(session: Session, event: AnswerReady) -> Decision:
    if event.ended:
        return Decision(session)
    action_id = f"answer:{event.run_id}:{event.seq}"
    turn = session.turn.replace(last_final_action=action_id)
    return Decision(
        Session(turn, session.queued),
        (PostInOrder(action_id, _after(session.turn.last_final_action, event.run_id)),),
    )


def _run_ended(session: Session, event: RunEnded, rules: Rules) -> Decision:
    post = PostInOrder(event.last_action, _after(session.turn.last_final_action, event.run_id))
    turn = session.turn.replace(last_final_action=event.last_action)
    if session.turn.active_run_id != event.run_id:
        return Decision(Session(turn, session.queued), (post,))  # the session moved on (stop, /new)
    turn = turn.replace(active_run_id="", turn_active=False, run_started_ms=None)
    if session.queued == 0:
        return Decision(Session(turn.replace(state="idle"), 0), (post,))
    next_start = _next_start(event.now_ms, rules.debounce_ms)
    return Decision(Session(turn.replace(state="debouncing"), session.queued), (post, *next_start))


def insert_position(queued: tuple[datetime, ...], arrived: datetime) -> int | None:
    """Index of the first queued message that arrived after this one (None: append), so a
    message put back keeps its place among those that came after it."""
    return next((i for i, at in enumerate(queued) if at > arrived), None)


def _steer_rejected(session: Session, event: SteerRejected, rules: Rules) -> Decision:
    if event.message is None:
        return Decision(session)
    if event.run_stopping:
        return Decision(session, (DropSteer(),))
    requeue = Requeue(insert_position(event.queued_arrivals, event.message))
    return _into_queue(session, requeue, event.now_ms, rules.debounce_ms, added=1)


def _into_queue(session: Session, put: Effect, now: int, debounce_ms: int, *, added: int) -> Decision:
    """Accepted messages back in the queue: a running turn or a pending start takes them; an idle
    session starts a turn (no busy bound: they were accepted already)."""
    queued = session.queued + added
    if session.turn.phase != "idle":
        return Decision(Session(session.turn, queued), (put,))
    turn = session.turn.replace(state="debouncing")
    return Decision(Session(turn, queued), (put, *_next_start(now, debounce_ms)))


def _stop(session: Session) -> Decision:
    turn = session.turn
    dropped: tuple[Effect, ...] = (DropQueue(), CancelStart(), LeaveLine())
    if turn.running and turn.active_run_id:
        # the run's end moves the session on and says "Stopped."
        return Decision(Session(turn, 0), (*dropped, Interrupt(turn.active_run_id)))
    if session.queued or turn.phase == "debouncing":
        idle = _idle(session, queued=0)
        return Decision(idle.session, (*dropped, Say("stopped")))
    return Decision(Session(turn, 0), (*dropped, Say("nothing_running")))


def _retry(session: Session, event: Retry) -> Decision:
    # a click is a deliberate start: no debounce in front of it
    return _into_queue(session, RestoreInputs(), event.now_ms, 0, added=event.count)


def admitted(active: int, ahead: int, max_active: int) -> bool:
    """Fair FIFO admission (what core.ADMIT_LUA does atomically): free slots must exceed the
    sessions waiting ahead."""
    return max_active <= 0 or active + ahead < max_active
