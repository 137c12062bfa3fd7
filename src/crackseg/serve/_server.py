"""How ``crackseg serve`` runs the app under uvicorn: the options, and an HTTP/1.1 protocol that
does not wait for ever on a request head.

uvicorn's h11 protocol waits for a request's line and headers without a time limit, and its
``limit_concurrency`` counts open connections: some 65 clients that send half a header and wait
made every route answer 503, ``/healthz`` included. Here no connection limit is set (the app's
:class:`~crackseg.serve._gate.InferenceGate` bounds the real work: only ``/predict`` counts), and
a connection that is not serving a request (just opened, kept alive between requests, or still
sending a body its answer did not read) has ``header_timeout_s`` to complete the next request
head; then it is closed, with a 408 if part of a head had come. A request's body is the route's
to time (``ServeSettings.read_timeout_s`` and ``timeout_s``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeadTimeoutProtocol", "protocol_class", "uvicorn_options"]

log = logging.getLogger("crackseg.serve")

_LATE = b'{"error": "the request line and headers did not arrive in time"}'
#: What a connection that sent part of a request head gets when its time is up.
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_LATE), _LATE)
)


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request head (``header_timeout_s``).

    The clock starts when the connection opens and again when a response is complete; it stops
    when a request head has been read (the app then has the request). It is not reset by data,
    so a client that trickles a header byte by byte is cut off as surely as a silent one.
    """

    header_timeout_s: ClassVar[float] = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        self._watch_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_head()

    def _watch_head(self) -> None:
        """Run the head's clock while no request is in the app; stop it while one is."""
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_late)
        else:
            self._stop_head_timer()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        partial = self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]
        if partial:
            self.transport.write(REQUEST_TIMEOUT)
        log.debug("closed a connection: no request head within %g s", self.header_timeout_s)
        self.transport.close()


def protocol_class(header_timeout_s: float) -> type[HeadTimeoutProtocol]:
    """:class:`HeadTimeoutProtocol` with its deadline (uvicorn builds one per connection)."""
    return type(
        "HeadTimeoutProtocol", (HeadTimeoutProtocol,), {"header_timeout_s": float(header_timeout_s)}
    )


def uvicorn_options(settings) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` for the app built with
    ``settings`` (a :class:`~crackseg.serve.ServeSettings`), host, port and logging aside."""
    return {
        "http": protocol_class(settings.header_timeout_s),
        "ws": "none",  # no WebSocket routes; an upgrade would leave the head's clock running
        "server_header": False,
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 5,
        # no limit_concurrency: it counts connections, so clients that only dawdle would starve
        # /healthz; the work is bounded by the app's gate (503 with Retry-After beyond it)
    }
