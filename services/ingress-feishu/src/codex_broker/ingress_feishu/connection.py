"""lark-oapi's long connection (`lark.ws.Client`) in its own thread and event loop.

lark-oapi 1.7.5 captures a module-global event loop at import and `start()` blocks forever, so
the client runs in a dedicated thread whose fresh loop is installed as that global before the
client is built there — hence at most one running client per process. There is no public stop:
`stop()` turns auto-reconnect off, closes the socket on the client's loop and stops the loop.

Handlers run on that loop and must return fast (Feishu re-pushes what is not acked within 3 s):
they only persist the event (see inbound.py) and return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

import lark_oapi as lark
import lark_oapi.ws.client as lark_ws_client
from lark_oapi.event.callback.model.p2_card_action_trigger import (
    P2CardActionTrigger,
    P2CardActionTriggerResponse,
)

from codex_broker.ingress_feishu import metrics
from codex_broker.ingress_feishu.inbound import NOT_STORED, event_to_dict

log = logging.getLogger(__name__)

ConnState = Literal["stopped", "connecting", "connected", "failed"]

# events an app commonly subscribes to besides ours: acknowledged and dropped, so that Feishu
# does not keep re-pushing them ("processor not found" would answer 500)
_IGNORED_EVENTS = (
    "im.message.message_read_v1",
    "im.message.reaction.created_v1",
    "im.message.reaction.deleted_v1",
    "im.chat.access_event.bot_p2p_chat_entered_v1",
    "im.chat.member.bot.added_v1",
    "im.chat.member.bot.deleted_v1",
)

_process_lock = threading.Lock()


class LongConnection:
    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        domain: str,
        on_message: Callable[[dict[str, Any]], None],
        on_card_action: Callable[[dict[str, Any]], str | None],
        on_malformed: Callable[[bytes, str], None] | None = None,
    ) -> None:
        self._app_id = app_id
        self._app_secret = app_secret
        self._domain = domain
        self._on_message = on_message
        self._on_card_action = on_card_action
        self._on_malformed = on_malformed
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: lark.ws.Client | None = None
        self._stopping = threading.Event()
        self.error: str | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a LongConnection starts once; make a new one")
        if not _process_lock.acquire(blocking=False):
            raise RuntimeError("another lark long connection runs in this process")
        self._thread = threading.Thread(target=self._run, name="feishu-ws", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Blocking: close the socket and end the thread (call it from a worker thread)."""
        self._stopping.set()
        loop, client = self._loop, self._client
        if loop is not None and client is not None and not loop.is_closed():
            client._auto_reconnect = False  # private: 1.7.5 has no public stop
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(client._disconnect(), loop).result(timeout_s)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("feishu long connection thread did not stop in time")

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def state(self) -> ConnState:
        if self._thread is None or self._stopping.is_set():
            return "stopped"
        if not self._thread.is_alive():
            return "failed"
        client = self._client
        return "connected" if client is not None and client._conn is not None else "connecting"

    # ---- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        lark_ws_client.loop = loop  # the module global every client method schedules on
        self._loop = loop
        loop.set_exception_handler(self._loop_exception)
        try:
            client = lark.ws.Client(
                self._app_id,
                self._app_secret,
                event_handler=self._dispatcher(),
                domain=self._domain,
                auto_reconnect=True,
                log_level=lark.LogLevel.INFO,
            )
            client.on_reconnecting = self._reconnecting
            self._client = client
            client.start()
        except RuntimeError as exc:
            if not self._stopping.is_set():  # "Event loop stopped" is our own stop()
                self.error = f"RuntimeError: {exc}"
                log.error("feishu long connection ended", extra={"error": self.error})
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("feishu long connection failed", extra={"error": self.error})
        finally:
            _close_loop(loop)
            _process_lock.release()

    def _dispatcher(self) -> lark.EventDispatcherHandler:
        builder = lark.EventDispatcherHandler.builder("", "")
        builder.register_p2_customized_event("im.message.receive_v1", self._handle_message)
        builder.register_p2_card_action_trigger(self._handle_card_action)
        for event_type in _IGNORED_EVENTS:
            builder.register_p2_customized_event(event_type, lambda _event: None)
        handler = builder.build()
        if self._on_malformed is not None:
            # private in 1.7.5: the one entry the ws client calls for every event payload
            handler._do_without_validation = self._guarded(handler._do_without_validation)  # type: ignore[method-assign]
        return handler

    def _guarded(self, handle: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        """lark answers 500 to any exception and Feishu pushes the event again — forever, for
        garbage. Only a failure to store deserves that; a payload that cannot be handled (not
        JSON, not an event, an unknown type, a shape we cannot read) is dead-lettered and
        answered 200. If the dead letter cannot be written either, that raises: 500."""
        on_malformed = self._on_malformed
        assert on_malformed is not None

        def handle_or_dead_letter(payload: bytes) -> Any:
            try:
                return handle(payload)
            except NOT_STORED:
                raise
            except Exception as exc:
                on_malformed(payload, f"{type(exc).__name__}: {exc}")
                return None

        return handle_or_dead_letter

    def _handle_message(self, event: Any) -> None:
        # exceptions propagate: lark answers 500 and Feishu delivers the event again
        self._on_message(event_to_dict(event))

    def _handle_card_action(self, event: P2CardActionTrigger) -> P2CardActionTriggerResponse:
        toast = self._on_card_action(event_to_dict(event))
        if toast is None:
            return P2CardActionTriggerResponse({})
        return P2CardActionTriggerResponse({"toast": {"type": "info", "content": toast}})

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # our stop() makes lark's receive task raise "connection closed": expected, not an error
        if self._stopping.is_set():
            return
        loop.default_exception_handler(context)

    def _reconnecting(self) -> None:
        metrics.WS_RECONNECTS.inc()
        log.warning("feishu long connection dropped; reconnecting")


def route_lark_logs() -> None:
    """lark prints its own "[Lark] …" lines to stdout; let its records go through our JSON logging
    (and its redaction) only."""
    lark_logger = logging.getLogger("Lark")
    for handler in list(lark_logger.handlers):
        lark_logger.removeHandler(handler)
    lark_logger.propagate = True


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    with contextlib.suppress(Exception):
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    with contextlib.suppress(Exception):
        loop.close()
