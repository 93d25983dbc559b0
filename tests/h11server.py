"""The event loop of the small h11 backends the vhost tests run behind frpc."""

from typing import Iterator

import h11


def serverEvents(conn: h11.Connection, data: bytes) -> Iterator[object]:
    """Feed ``data`` to a server-side h11 connection and yield its events, starting the next
    request/response cycle whenever both sides are done (keep-alive).  Stops when more data is
    needed, when h11 pauses for another reason, or after ``ConnectionClosed``.  The caller
    answers an event before asking for the next one, as h11 requires."""
    conn.receive_data(data)
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            return
        if event is h11.PAUSED:
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
                continue
            return
        yield event
        if isinstance(event, h11.ConnectionClosed):
            return
