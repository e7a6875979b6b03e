"""`sync_timeout`: interrupt synchronous user code that runs past its deadline.

In the main thread a SIGALRM timer raises inside the code, even in a blocking
call such as time.sleep; nested timeouts share the one timer. In other threads
(task runner workers) the exception is injected into the thread and surfaces
at its next Python instruction: code blocked in C is interrupted when it returns.
Either way the exception is raised only where the user's code runs, never in
the middle of Runway's own (see `shielded`).
"""
from __future__ import annotations

import ctypes
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class _Expired(BaseException):
    """Raised into the timed code; a BaseException so `except Exception` in user code cannot swallow it."""


# --- where an expiry may be raised ------------------------------------------------------
# An exception raised at an arbitrary instruction of Runway's own code can leave a lock
# taken (logging's module lock, say) or a database transaction half-closed. So Runway's
# code runs `shielded`: an expiry arriving then is held, and raised at the next point
# where the user's code runs (`exposed`) or when the shield ends.

_depth: dict[int, int] = {}  # thread id -> shield depth
_pending: dict[int, type[_Expired]] = {}  # thread id -> expiry held back
_open: dict[int, set[type[_Expired]]] = {}  # thread id -> timeout scopes still open
_state_lock = threading.Lock()


class shielded:
    """Hold expiries while Runway's own code runs in this thread."""

    def __enter__(self) -> None:
        thread = threading.get_ident()
        _depth[thread] = _depth.get(thread, 0) + 1

    def __exit__(self, *exc: object) -> None:
        thread = threading.get_ident()
        depth = _depth.get(thread, 1) - 1
        if depth:
            _depth[thread] = depth
        else:
            _depth.pop(thread, None)
            _deliver(thread)


class exposed:
    """Let expiries through while the user's code runs, even inside a shield."""

    def __enter__(self) -> None:
        thread = threading.get_ident()
        self.saved = _depth.pop(thread, 0)
        _deliver(thread)

    def __exit__(self, *exc: object) -> None:
        if self.saved:
            _depth[threading.get_ident()] = self.saved


def _deliver(thread: int) -> None:
    with _state_lock:
        marker = _pending.pop(thread, None)
        still_open = marker is not None and marker in _open.get(thread, ())
    if still_open:
        raise marker()


def _hold(thread: int, marker: type[_Expired]) -> bool:
    """Keep `marker` for later if `thread` is in Runway's code; True if held."""
    with _state_lock:
        if not _depth.get(thread):
            return False
        _pending.setdefault(thread, marker)
        return True


@contextmanager
def _scope_open(marker: type[_Expired]) -> Iterator[None]:
    thread = threading.get_ident()
    with _state_lock:
        _open.setdefault(thread, set()).add(marker)
    try:
        yield
    finally:
        with _state_lock:
            _open[thread].discard(marker)
            if not _open[thread]:
                del _open[thread]
            if _pending.get(thread) is marker:
                del _pending[thread]


@contextmanager
def sync_timeout(seconds: float | None, error: Callable[[], TimeoutError] = TimeoutError) -> Iterator[None]:
    """Raise `error()` if the block runs longer than `seconds` (None: no limit)."""
    if not seconds:
        yield
        return
    main = threading.current_thread() is threading.main_thread()
    guard = _alarm if main and hasattr(signal, "setitimer") else _injected
    marker = type("TimeoutExpired", (_Expired,), {})
    try:
        with _scope_open(marker), guard(seconds, marker):
            yield
    except marker:
        raise error() from None


@contextmanager
def _alarm(seconds: float, marker: type[_Expired]) -> Iterator[None]:
    deadline = time.monotonic() + seconds
    outer_handler = signal.getsignal(signal.SIGALRM)
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    outer_deadline = time.monotonic() + outer_left if outer_left else None

    outer_fired = False

    def on_alarm(signum, frame):
        nonlocal outer_fired
        if time.monotonic() < deadline - 0.0005:
            if callable(outer_handler):  # an enclosing timeout expired first: its exception is on its way
                outer_fired = True
                outer_handler(signum, frame)
            return
        if not _hold(threading.get_ident(), marker):
            raise marker()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer_left or math.inf))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_deadline is not None and not outer_fired:  # re-arming a fired one would raise it twice
            signal.setitimer(signal.ITIMER_REAL, max(outer_deadline - time.monotonic(), 1e-4))


@contextmanager
def _injected(seconds: float, marker: type[_Expired]) -> Iterator[None]:
    thread_id = threading.get_ident()
    lock = threading.Lock()
    flags = {"done": False, "fired": False}

    def fire() -> None:
        with lock:
            if not flags["done"] and not _hold(thread_id, marker):
                flags["fired"] = True
                _set_async_exc(thread_id, marker)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            flags["done"] = True
            timer.cancel()
            if flags["fired"]:
                _set_async_exc(thread_id, None)  # clear it if it has not surfaced yet


# --- interrupting a thread on another's request (a cancelled flow run) -----------------------
Interruption = _Expired  # the base of what may be raised into user code; see sdk/engine/cancellation.py
interruptible = _scope_open  # while open in a thread, `marker` may be raised there by `interrupt`


def interrupt(thread_id: int, marker: type[_Expired]) -> None:
    """Raise `marker` in `thread_id` now, or when it next runs the user's code (see `shielded`)."""
    if not _hold(thread_id, marker):
        _set_async_exc(thread_id, marker)


def _set_async_exc(thread_id: int, exc_type: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else ctypes.c_void_p(0)
    )
