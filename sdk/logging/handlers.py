"""Where run log lines go: the terminal, in Prefect's format, and the Log table, in batches.

Both handlers replace the secret values this process read by ******** (sdk/redaction.py),
in the message and in the traceback of a logged exception.

Persisting happens on a background thread (`LogWorker`) so a log call costs
the caller a queue put; `flush_logs()` waits until every line so far is stored,
which the engine does when a flow run ends and the process does at exit.
"""
from __future__ import annotations

import collections
import copy
import logging
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from sdk.redaction import redact

DATEFMT = "%H:%M:%S"
_TIMED = "%(asctime)s.%(msecs)03d | %(levelname)-7s | "
_FLOW, _TASK, _PLAIN = "Flow run %(flow_run_name)r - %(message)s", "Task run %(task_run_name)r - %(message)s", "%(name)s - %(message)s"
_PLAIN_FMT = logging.Formatter(_TIMED + _PLAIN, DATEFMT)


class RunFormatter(logging.Formatter):
    """`HH:MM:SS.mmm | LEVEL   | Flow run 'name' - message`, or Task run, or the logger's name;
    with `timed=False`, without the time and level, for a handler whose own format has them."""

    def __init__(self, timed: bool = True) -> None:
        super().__init__()
        prefix = _TIMED if timed else ""
        self._task, self._flow, self._plain = (logging.Formatter(prefix + f, DATEFMT) for f in (_TASK, _FLOW, _PLAIN))

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "task_run_name", None):
            return self._task.format(record)
        if getattr(record, "flow_run_name", None):
            return self._flow.format(record)
        return self._plain.format(record)


class ConsoleHandler(logging.StreamHandler):
    """Writes to the current sys.stderr (looked up per record, so captured output works).

    In a Celery worker, sys.stderr is Celery's proxy, which would log each line written to
    it as a new record (a second stack walk and format, with the time twice and every line
    at one level): there the record itself goes to the proxy's logger, so the worker's log
    shows `[time: LEVEL/ForkPoolWorker-1] Task run 'name' - message` at the line's own level,
    if the worker's `--loglevel` lets that level through.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(RunFormatter())
        self._untimed = RunFormatter(timed=False)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

    def emit(self, record: logging.LogRecord) -> None:
        target = _celery_redirect(sys.stderr)
        if target is None:
            super().emit(record)
            return
        if not target.isEnabledFor(record.levelno):
            return
        try:
            line = copy.copy(record)
            line.msg, line.args = redact(self._untimed.format(record)), None
            line.exc_info = line.exc_text = line.stack_info = None  # already in msg
            target.handle(line)
        except Exception:
            self.handleError(record)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _celery_redirect(stream: Any) -> logging.Logger | None:
    """The logger behind Celery's sys.stderr proxy, if this is one (only once Celery is imported)."""
    celery_log = sys.modules.get("celery.utils.log")
    proxy = getattr(celery_log, "LoggingProxy", None)
    if proxy is not None and isinstance(stream, proxy):
        return stream.logger
    return None


class OrchestratorHandler(logging.Handler):
    """Queues records that belong to a run for the log worker to store."""

    def emit(self, record: logging.LogRecord) -> None:
        flow_run_id = getattr(record, "flow_run_id", None)
        task_run_id = getattr(record, "task_run_id", None)
        if flow_run_id is None and task_run_id is None:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{_PLAIN_FMT.formatException(record.exc_info)}"
            entry = {
                "flow_run_id": flow_run_id,
                "task_run_id": task_run_id,
                "level": record.levelno,
                "name": record.name,
                "message": redact(message),
                "timestamp": datetime.fromtimestamp(record.created, timezone.utc),
            }
        except Exception:
            self.handleError(record)
            return
        log_worker().enqueue(entry)


class LogWorker:
    """Batches log entries and writes them through the client, off the caller's thread.

    Entries go into a deque; the worker wakes every `interval` (or when a batch
    fills, or on flush) instead of once per line, which would cost a thread
    switch on every log call.
    """

    def __init__(self, interval: float, batch_size: int) -> None:
        self.interval, self.batch_size = interval, batch_size
        self._entries: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._flushes: collections.deque = collections.deque()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="runway-logs", daemon=True)
        self._thread.start()

    def enqueue(self, entry: dict[str, Any]) -> None:
        self._entries.append(entry)
        if len(self._entries) >= self.batch_size:
            self._wake.set()

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything enqueued before this call is stored."""
        done = threading.Event()
        self._flushes.append(done)
        self._wake.set()
        done.wait(timeout)

    def stop(self) -> None:
        self._stopping = True
        self.flush()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            flushes = [self._flushes.popleft() for _ in range(len(self._flushes))]
            pending = len(self._entries)  # only what is queued now: lines arriving meanwhile wait for the next wake
            while pending > 0:
                count = min(pending, self.batch_size)
                self._write([self._entries.popleft() for _ in range(count)])
                pending -= count
            for done in flushes:
                done.set()
            if self._stopping and not self._entries:
                return

    def _write(self, batch: list[dict[str, Any]]) -> None:
        if not batch:
            return
        from sdk.client import get_client

        key = uuid.uuid4().hex  # the same for every try: a batch stored before its answer was lost is not stored again
        for attempt in range(3):
            try:
                get_client().write_logs(batch, batch_key=key)
                return
            except Exception as exc:  # keep the run going; say what was lost and why
                if attempt == 2:
                    print(f"runway: could not store {len(batch)} log lines: {exc!r}", file=sys.__stderr__)
                time.sleep(0.2 * (attempt + 1))


_worker: LogWorker | None = None
_worker_lock = threading.Lock()


def log_worker() -> LogWorker:
    global _worker
    if _worker is None:
        with _worker_lock:
            if _worker is None:
                from sdk.settings import get_settings

                settings = get_settings()
                _worker = LogWorker(settings.log_flush_interval, settings.log_batch_size)
    return _worker


def flush_logs() -> None:
    """Store every log line emitted so far."""
    if _worker is not None:
        _worker.flush()


def stop_log_worker() -> None:
    global _worker
    if _worker is not None:
        _worker.stop()
        _worker = None
