"""Stalls: one step of the loop costing more than LOOP_STEP_LIMIT seconds of CPU time fails the test it ran in.

The failure shows the stack that held the loop; a step that does not end is interrupted, so the run goes on.

A thread pings every running loop and, until the ping is answered, reads the
CPU clock of the loop's thread: CPU time, unlike wall time, is the step's own
cost, which a busy machine or a slow runner cannot inflate, so the limit can
be low. A blocking call that sleeps costs no CPU; blockbuster catches those.
Where the platform has no per-thread CPU clock (macOS, Windows), wall time is
measured instead, against WALL_TIME_FACTOR times the limit.

A step that has cost INTERRUPT_FACTOR times its limit and goes on (an
endless loop in pure Python, which no watchdog on that loop can reach), or
one still blocked at the test's time limit, is interrupted: a signal to the
main thread, the loop's, raises StepInterrupted in it, so the test fails
there and the run goes on. A step that works is judged on its CPU time
alone, never on how long a busy machine made it wait for a core.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Generator
from types import FrameType

import pytest

from .hangs import time_limit
from .loops import watched_loops

LOOP_STEP_LIMIT = 0.25  # seconds of CPU time one turn of the loop may take; -v shows the run's costliest
DEBUG_SLOWDOWN = 3  # the limit's multiplier under asyncio's debug mode (--heavy), which makes every step costlier
WALL_TIME_FACTOR = 4  # where only wall time can be measured, the limit on it (a busy machine stretches it)
PING_INTERVAL = 0.02  # how often a running loop is pinged, and its thread's clock read while a step runs
STACK_DEPTH = 8  # innermost frames of the loop thread's stack shown for a stall
INTERRUPT_FACTOR = 4  # a step past this many times its limit is interrupted: it fails its test either way
INTERRUPT = getattr(signal, "SIGUSR1", None)  # the signal that interrupts a step that never ends (not on Windows)

STEP_LIMIT = pytest.StashKey[float]()
MONITOR = pytest.StashKey["Monitor"]()


class StepInterrupted(BaseException):
    """Raised in a loop step still running at its test's time limit.

    A BaseException, so `except Exception` in the spinning code cannot swallow it.
    """


def step_limit(item: pytest.Item) -> float:
    marker = item.get_closest_marker("loop_step_limit")
    return float(marker.args[0]) if marker else LOOP_STEP_LIMIT


def thread_clock(ident: int) -> Callable[[], float] | None:
    """A function reading thread `ident`'s CPU time, or None where the platform has no such clock.

    Call this in that thread, while it surely lives.
    """
    if not hasattr(time, "pthread_getcpuclockid"):
        return None
    clock = time.pthread_getcpuclockid(ident)
    return lambda: time.clock_gettime(clock)


class Stall:
    """One step that passed its limit: its cost so far, where the loop's thread was, whether it ever ended."""

    def __init__(self, cost: float, limit: float, stack: str) -> None:
        self.cost = cost
        self.limit = limit  # as applied: the test's, times DEBUG_SLOWDOWN in debug mode, WALL_TIME_FACTOR on wall time
        self.stack = stack
        self.ended = False
        self.spinning = False  # when interrupted: for costing INTERRUPT_FACTOR times the limit, not for the time limit


class Ping(threading.Event):
    """Set by the loop when it runs the ping's callback, that is once the step in progress has ended.

    `at` is the loop thread's clock then, read there: the monitor may get a core only later.
    """

    at = 0.0
    interrupted = False  # the step never ended: StepInterrupted was raised in it


class Monitor(threading.Thread):
    """Pings every running loop; measures each step's cost on the loop thread's clock while it waits."""

    def __init__(self, config: pytest.Config) -> None:
        super().__init__(name="loop-stall-monitor", daemon=True)
        self.config = config
        self.limit = LOOP_STEP_LIMIT
        self.deadline = float("inf")  # when the current phase's time is up: a step still blocked is interrupted
        self.stalls: list[Stall] = []
        self.longest: tuple[float, str] = (0.0, "")  # the costliest step seen in the run, and its test
        self.test = ""
        self.armed = threading.Event()
        self.pinging = threading.Lock()
        self.clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[int, Callable[[], float] | None]]
        self.clocks = weakref.WeakKeyDictionary()
        self.spinning: Ping | None = None  # the unanswered ping of a step being interrupted
        self.next_interrupt = 0.0  # a step that swallows StepInterrupted gets another each second

    def watch(self, test: str, limit: float, deadline: float) -> None:
        self.test, self.limit, self.deadline, self.stalls = test, limit, deadline, []
        self.armed.set()

    def pause(self) -> list[Stall]:
        """Stop pinging, once the ping in flight (if any) has its answer; the stalls found since `watch`."""
        self.armed.clear()
        with self.pinging:
            return self.stalls

    def run(self) -> None:
        while self.armed.wait():
            with self.pinging:
                for loop in list(watched_loops(self.config)):
                    if self.armed.is_set() and loop.is_running():
                        self.ping(loop)
            time.sleep(PING_INTERVAL)

    def ping(self, loop: asyncio.AbstractEventLoop) -> None:
        answered = Ping()
        ident, clock = self.clocks.get(loop, (threading.main_thread().ident or 0, MAIN_CLOCK))
        read = clock or time.monotonic
        limit = self.limit * (DEBUG_SLOWDOWN if loop.get_debug() else 1) * (1 if clock else WALL_TIME_FACTOR)
        started = read()
        try:
            loop.call_soon_threadsafe(self.answer, loop, answered, read)
        except RuntimeError:  # closed meanwhile
            return
        stall, cost = None, 0.0
        while not answered.wait(PING_INTERVAL):
            if not loop.is_running():  # its run ended, and the step with it; the thread's clock now counts other work
                break
            cost = read() - started
            if stall is None and cost > limit:
                frame = sys._current_frames().get(ident)
                stall = Stall(cost, limit, "".join(traceback.format_stack(frame)[-STACK_DEPTH:]) if frame else "")
                self.stalls.append(stall)
            if stall is not None:
                stall.cost = cost
            spinning = cost > INTERRUPT_FACTOR * limit
            blocked = stall is None and time.monotonic() > self.deadline  # past the time limit, yet cheap
            if (spinning or blocked) and ident == threading.main_thread().ident:
                if stall is None:
                    frame = sys._current_frames().get(ident)
                    stall = Stall(cost, limit, "".join(traceback.format_stack(frame)[-STACK_DEPTH:]) if frame else "")
                    self.stalls.append(stall)
                stall.spinning = spinning
                self.interrupt(answered)
        else:
            cost = answered.at - started
            if stall is not None and cost <= limit:  # read late (the monitor waited for a core): no stall after all
                self.stalls.remove(stall)
                stall = None
        if stall is not None:
            stall.cost, stall.ended = cost, not answered.interrupted
        self.spinning = None
        if cost > self.longest[0]:
            self.longest = (cost, self.test)

    def interrupt(self, answered: Ping) -> None:
        """Raise StepInterrupted in the main thread, unless the step ends first; again each second it goes on."""
        if INTERRUPT is not None and time.monotonic() > self.next_interrupt:
            self.spinning = answered
            self.next_interrupt = time.monotonic() + 1
            signal.pthread_kill(threading.main_thread().ident or 0, INTERRUPT)

    def answer(self, loop: asyncio.AbstractEventLoop, answered: Ping, read: Callable[[], float]) -> None:
        """On the loop's thread: read the clock the ping measures by, learn this thread's clock, then answer."""
        answered.at = read()
        if loop not in self.clocks:
            ident = threading.get_ident()
            self.clocks[loop] = (ident, thread_clock(ident))
        answered.set()

    def on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler, in the main thread: raise in the step that is still running."""
        spinning = self.spinning
        if spinning is not None and not spinning.is_set():
            spinning.interrupted = True
            raise StepInterrupted("a step of the event loop did not end")


MAIN_CLOCK = thread_clock(threading.main_thread().ident or 0)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "loop_step_limit(seconds): allow one loop step this much CPU time")
    config.stash[MONITOR] = monitor = Monitor(config)
    if INTERRUPT is not None and threading.current_thread() is threading.main_thread():
        signal.signal(INTERRUPT, monitor.on_interrupt)
    monitor.start()


def _report(item: pytest.Item, when: str, stalls: list[Stall]) -> str:
    stall = max(stalls, key=lambda stall: stall.cost)
    unit = "s of CPU time" if MAIN_CLOCK else "s"
    limit = round(stall.limit, 3)
    if not stall.ended:
        past = f"{INTERRUPT_FACTOR} times the limit" if stall.spinning else f"the time limit ({time_limit(item)} s)"
        return (
            f"one step of the event loop never ended during {when}: it ran {stall.cost:.2f} {unit} (limit {limit} "
            f"s) and went on past {past}, so it was interrupted. The loop was here:\n{stall.stack}"
        )
    return (
        f"one step of the event loop took {stall.cost:.2f} {unit} during {when} (limit {limit} s): CPU work on the "
        f"loop stalls every other request. The loop was here:\n{stall.stack}"
        "Move the work to a thread (asyncio.to_thread), or raise the limit for this test with "
        "@pytest.mark.loop_step_limit(seconds)."
    )


def _checked(item: pytest.Item, when: str, limit: float) -> Generator[None, None, None]:
    """Run one phase of `item` with its loops' steps measured; fail it when one passed the limit."""
    monitor = item.config.stash[MONITOR]
    monitor.watch(item.nodeid, step_limit(item), time.monotonic() + limit)
    try:
        yield
    finally:
        if stalls := monitor.pause():
            pytest.fail(_report(item, when, stalls), pytrace=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outside the hangs' watch: a stall is the cause, a hang its effect
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    yield from _checked(item, "setup", time_limit(item))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    yield from _checked(item, "call", time_limit(item))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    yield from _checked(item, "teardown", time_limit(item))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """One line: the costliest loop step of the run, to set LOOP_STEP_LIMIT by (shown with -v)."""
    cost, test = config.stash[MONITOR].longest
    if config.get_verbosity() > 0 and test:
        unit = "s of CPU time" if MAIN_CLOCK else "s"
        terminalreporter.write_line(f"longest loop step: {cost:.3f} {unit} (limit {LOOP_STEP_LIMIT} s), in {test}")
