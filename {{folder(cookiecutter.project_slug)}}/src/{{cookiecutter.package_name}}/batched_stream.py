"""A logging handler that writes the lines of one event-loop iteration to its stream in one write."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, TextIO


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    """Lines logged on a running event loop are written together once the loop's current iteration is done.

    Under load one write carries the access lines of every request an iteration answered, where a write per line
    would cost a system call each (every write is one when the stream is unbuffered, as PYTHONUNBUFFERED makes
    it). A line is never later than the next iteration, which runs before the loop waits for anything. A line
    logged with no running loop (another thread, start-up, shutdown) is written at once, after those pending, and
    `flush` and `close` (logging.shutdown calls both at exit) write the pending lines, so a clean stop loses none.

    A line is queued without the handler's lock, which would cost a tenth of an access line: the queue is a deque,
    which threads may append to while a writer takes from it. The lock keeps the writes one at a time, in order.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        assert self.lock is not None  # Handler.__init__ made it: an RLock, which a fork re-initialises in place
        self.held = self.lock  # the same lock typed without None, so `with` takes it: no call to acquire and release
        self.pending: deque[Any] = deque()  # the batch's lines, or entries `lines_of` makes lines of when written
        self.scheduled = False  # whether a loop will write the pending lines at the end of its iteration
        self.batches = 0  # the writes of pending lines so far: the number of the batch lines go to now

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # what logging.Handler does: report the broken record on stderr, keep the program going
            self.handleError(record)
            return
        self.write_line(line)

    def write_line(self, line: Any) -> None:
        """Write `line` with the others of this loop iteration, or at once if no loop runs in this thread."""
        self.pending.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread
            self.flush()
            return
        if not self.scheduled:  # read after the append: if a flush is about to clear it, that flush takes the line
            self.scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.held:
            self.scheduled = False  # cleared before the lines are taken: one appended after that schedules a flush
            if not self.pending:
                return
            entries = [self.pending.popleft() for _ in range(len(self.pending))]
            self.batches += 1
            try:
                self.stream.write("\n".join(self.lines_of(entries)) + self.terminator)
                self.stream.flush()
            except Exception:  # e.g. a closed pipe: report it on stderr, as logging.Handler does, and go on
                self.handleError(logging.makeLogRecord({"msg": entries[0]}))

    def lines_of(self, entries: list[Any]) -> list[str]:
        """The lines of a batch's entries, in order: here each entry is its line."""
        return entries

    def close(self) -> None:
        self.flush()
        super().close()
