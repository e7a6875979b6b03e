"""Transactions: task runs that commit or roll back together, as in Prefect 3.

    with transaction(key="orders-2024-06-01"):
        path = write_file(rows)     # @write_file.on_rollback deletes the file
        quality_check(path)         # raises: the file is deleted, the error goes on

Each task run that completes in the block is staged on it, in the order runs
complete. When the block ends the transaction commits: each staged run's
`on_commit` hooks, in order, and a keyed transaction writes its record. When the
block raises it rolls back: `on_rollback` hooks, newest run first, then the error
propagates. A transaction inside another stages its runs on the outer one, which
decides for both; an inner one that raises rolls back its own runs at once.

A keyed transaction's record is `transactions/<sha256(key)>.json` in result
storage. A later run that finds it is committed already: the task runs in the
block are recorded Cached with their recorded results without running, and no
hook runs again. docs/transactions.md has the details.
"""
from __future__ import annotations

import contextvars
import enum
import hashlib
import inspect
import itertools
import json
import logging
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdk import results
from sdk.context import FlowRunContext
from sdk.engine.timeouts import shielded
from sdk.exceptions import MissingContextError, TransactionCommitError, TransactionRecordError
from sdk.filesystems import LocalFileSystem
from sdk.states import Completed, State

if TYPE_CHECKING:
    from sdk.context import RunInfo
    from sdk.engine.task_engine import TaskRunEngine
    from sdk.futures import RunwayFuture
    from sdk.tasks import Task

__all__ = ["Transaction", "TransactionState", "get_transaction", "transaction"]

RECORDS_FOLDER = "transactions"  # in result storage: one JSON record per committed keyed transaction
_MISSING = object()
_completions = itertools.count()  # orders staged runs by completion across nested transactions


class TransactionState(str, enum.Enum):
    PENDING = "PENDING"  # made, its block not entered yet
    ACTIVE = "ACTIVE"  # its block is running (a task run's: the run has not ended)
    STAGED = "STAGED"  # done, waiting for the outermost transaction to commit or roll back
    COMMITTED = "COMMITTED"
    ROLLED_BACK = "ROLLED_BACK"


_current: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar("runway_transaction", default=None)


def get_transaction() -> Transaction | None:
    """The innermost open transaction (also inside the task runs started in its block), or None."""
    return _current.get()


def transaction(key: str | None = None, *, overwrite: bool = False,
                storage: LocalFileSystem | None = None) -> Transaction:  # fmt: skip
    """A transaction for a `with` block: `with transaction(key="load-2024-06-01") as txn:`.

    `key` makes it idempotent: once committed, later runs of the block find it
    committed (`txn.is_committed()`) and its task runs return their recorded
    results without running. `overwrite=True` runs it again and replaces the
    record. `storage` holds the record (default: the flow run's result storage).
    """
    return Transaction(key, overwrite=overwrite, storage=storage)


class Transaction:
    """A `with transaction():` block, or (as `TaskRunTransaction`) one task run staged on it.

    `set(name, value)` and `get(name)` share values with the hooks: a task run's
    transaction looks a name up in itself, then in the blocks around it.
    """

    def __init__(self, key: str | None = None, *, overwrite: bool = False, storage: LocalFileSystem | None = None,
                 parent: Transaction | None = None) -> None:  # fmt: skip
        if key is not None and (not isinstance(key, str) or not key):
            raise TypeError(f"a transaction key must be a non-empty string, got {key!r}")
        self.key, self.overwrite, self.storage, self.parent = key, overwrite, storage, parent
        self.state = TransactionState.PENDING
        self.committed_at: str | None = None  # a keyed transaction's, from its record
        self._values: dict[str, Any] = {}
        self._staged: list[TaskRunTransaction] = []  # completed task runs, this block's and its inner blocks'
        self._joined: list[Transaction] = []  # inner transactions whose runs were staged here
        self._watched: list[tuple[TaskRunTransaction, RunwayFuture]] = []  # runs submitted in the block
        self._counts: dict[str, int] = {}
        self._record: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._logger: logging.Logger | logging.LoggerAdapter = logging.getLogger("runway.transactions")

    # --- what hooks and the block's code ask ----------------------------------------------
    def is_committed(self) -> bool:
        return self.state == TransactionState.COMMITTED

    def is_rolled_back(self) -> bool:
        return self.state == TransactionState.ROLLED_BACK

    def is_active(self) -> bool:
        return self.state == TransactionState.ACTIVE

    def set(self, name: str, value: Any) -> None:
        self._values[name] = value

    def get(self, name: str, default: Any = _MISSING) -> Any:
        txn: Transaction | None = self
        while txn is not None:
            if name in txn._values:
                return txn._values[name]
            txn = txn.parent
        if default is not _MISSING:
            return default
        raise KeyError(f"no value {name!r} was set on this transaction or the ones around it; "
                       f"set it with get_transaction().set({name!r}, value)")  # fmt: skip

    @property
    def record_path(self) -> Path | None:
        """Where a keyed transaction's record is (or will be) written; delete it to run the block again."""
        return self._store().basepath / self._record_name() if self.key else None

    # --- the block ------------------------------------------------------------------------
    def __enter__(self) -> Transaction:
        if self.state != TransactionState.PENDING:
            raise RuntimeError("a transaction can be entered once; make a new one with transaction()")
        self.parent = _current.get()
        self._logger = _run_logger()
        with shielded():
            self._record = self._read_record() if self.key and not self.overwrite else None
        replaying = self._record is not None or (self.parent is not None and self.parent.is_committed())
        if self._record is not None:
            self.committed_at = self._record.get("committed")
            self._logger.info(f"Transaction {self.key!r} was committed at {self.committed_at}; "
                              "its task runs return their recorded results")  # fmt: skip
        self.state = TransactionState.COMMITTED if replaying else TransactionState.ACTIVE
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        try:
            if exc_type is None or issubclass(exc_type, Exception):
                self._wait_for_submitted_runs()  # interrupted (Ctrl-C, a timeout): what completed is rolled back
        except BaseException:
            self._end(rollback=True)
            raise
        self._end(rollback=exc_type is not None)
        return False

    def _wait_for_submitted_runs(self) -> None:
        """Runs submitted in the block are part of it: each is staged (or not) before the block ends."""
        done = 0
        while done < len(self._watched):
            run, future = self._watched[done]
            run.finished(_final_state(future))
            done += 1

    def _end(self, rollback: bool) -> None:
        _current.reset(self._token)
        with shielded():
            if self.state != TransactionState.ACTIVE:  # committed already: nothing to do again
                return
            if rollback:
                self._rollback()
            elif self.parent is not None and self.parent.is_active():
                self._stage_on(self.parent)
            else:
                self._commit()

    def _stage_on(self, outer: Transaction) -> None:
        """An inner block ended well: its runs commit or roll back with the outer one."""
        with outer._lock:
            outer._staged += self._staged
            outer._joined.append(self)
        self.state = TransactionState.STAGED

    # --- commit and rollback -------------------------------------------------------------
    def _in_order(self) -> list[TaskRunTransaction]:
        with self._lock:
            return sorted(self._staged, key=lambda run: run.completion)

    def _commit(self) -> None:
        """on_commit hooks in order, then the records; if one fails, everything rolls back and the error says why."""
        runs = self._in_order()
        try:
            for run in runs:
                run.run_hooks("commit", self._logger, raise_errors=True)
            for txn in self._keyed():
                txn._write_record()
        except Exception as exc:
            self._logger.error(f"Could not commit the transaction{_named(self.key)}; rolling it back", exc_info=exc)
            self._rollback()
            raise TransactionCommitError(f"the transaction{_named(self.key)} was rolled back: its commit "
                                         f"failed with {type(exc).__name__}: {exc}") from exc  # fmt: skip
        self._mark(TransactionState.COMMITTED)

    def _rollback(self) -> None:
        """on_rollback hooks, the newest run first; a failing hook is logged and the others still run."""
        for run in reversed(self._in_order()):
            run.run_hooks("rollback", self._logger, raise_errors=False)
            run.record_rollback(self._logger)
        self._mark(TransactionState.ROLLED_BACK)

    def _mark(self, state: TransactionState) -> None:
        self.state = state
        for txn in [*self._joined, *self._staged]:
            txn._mark(state)

    def _keyed(self) -> list[Transaction]:
        """This transaction and the inner ones staged on it that have a key: each writes its record."""
        found = [self] if self.key else []
        for txn in self._joined:
            found += txn._keyed()
        return found

    # --- records ---------------------------------------------------------------------------
    def _store(self) -> LocalFileSystem:
        if self.storage is None:
            flow_ctx = FlowRunContext.get()
            self.storage = (flow_ctx.result_storage if flow_ctx else None) or LocalFileSystem()
        return self.storage

    def _record_name(self) -> str:
        return f"{RECORDS_FOLDER}/{hashlib.sha256(self.key.encode()).hexdigest()}.json"

    def _read_record(self) -> dict[str, Any] | None:
        try:
            content = self._store().read_path(self._record_name())
        except FileNotFoundError:
            return None
        try:
            record = json.loads(content)
            if not isinstance(record.get("task_runs"), dict):
                raise ValueError("no task_runs")
        except (ValueError, AttributeError) as exc:
            raise TransactionRecordError(
                f"the record of transaction {self.key!r} at {self.record_path} cannot be read ({exc}); "
                "delete it, or use transaction(key=..., overwrite=True), to run the transaction again"
            ) from None
        return record

    def _write_record(self) -> None:
        """Atomically (a temporary file, then a rename): a record is there whole or not at all."""
        flow_ctx = FlowRunContext.get()
        record = {
            "key": self.key, "committed": datetime.now(timezone.utc).isoformat(),
            "flow_run_id": str(flow_ctx.flow_run.id) if flow_ctx and flow_ctx.flow_run else None,
            "task_runs": {run.slots[self]: run.recorded_entry() for run in self._in_order()},
        }  # fmt: skip
        self._store().write_path(self._record_name(), json.dumps(record, indent=1).encode())
        self.committed_at = record["committed"]
        for entry in record["task_runs"].values():
            if not _persisted(entry["result"]):
                self._logger.warning(f"The result of task run {entry['name']!r} was not persisted: a rerun of "
                                     f"transaction {self.key!r} runs it again; set persist_result=True to keep it")  # fmt: skip

    def _recorded_state(self, slot: str) -> State | None:
        """The state a committed keyed transaction recorded for the task run in `slot`, if any."""
        entry = (self._record or {}).get("task_runs", {}).get(slot)
        if entry is None or not _persisted(entry.get("result")):
            return None  # not recorded, or its value cannot be given back: the run runs again
        state = Completed(name="Cached", message=f"Recorded by transaction {self.key!r}, committed {self.committed_at}")
        state.result_ref = entry["result"]
        return state

    def next_slot(self, task_key: str) -> str:
        """`<task key>#<n>`: the n-th run of that task created in this block, how a rerun finds its record."""
        with self._lock:
            count = self._counts.get(task_key, 0)
            self._counts[task_key] = count + 1
        return f"{task_key}#{count}"

    def __repr__(self) -> str:
        return f"Transaction(key={self.key!r}, state={self.state.value})"


class TaskRunTransaction(Transaction):
    """One task run in a transaction: what its on_commit and on_rollback hooks receive.

    `txn.get("result")` is the run's return value; `txn.task_run` its id and name,
    `txn.task_run_state` its final state, `txn.parent` the block's transaction.
    """

    def __init__(self, parent: Transaction, task: Task, task_run: RunInfo) -> None:
        super().__init__(parent=parent)
        self.task, self.task_run = task, task_run
        self.task_run_state: State | None = None
        self.state = TransactionState.ACTIVE
        self.completion = 0
        self._ended = False
        self.slots: dict[Transaction, str] = {}  # its place in each enclosing block
        txn: Transaction | None = parent
        while txn is not None:
            self.slots[txn] = txn.next_slot(task.task_key)
            txn = txn.parent

    def __enter__(self) -> Transaction:
        raise RuntimeError("a task run's transaction is not a block; open one with transaction()")

    def get(self, name: str, default: Any = _MISSING) -> Any:
        if name == "result" and "result" not in self._values and self.task_run_state is not None:
            return self.task_run_state.result()
        return super().get(name, default)

    def recorded(self) -> State | None:
        """The state a committed transaction around this run recorded for it (the run is not run again)."""
        for txn, place in self.slots.items():
            state = txn._recorded_state(place)
            if state is not None:
                self.state, self._ended = TransactionState.COMMITTED, True
                return state
        return None

    def finished(self, state: State | None) -> State | None:
        """The run ended: staged on its block if it completed (a cache hit did no work here: not staged)."""
        parent = self.parent
        with parent._lock:
            if self._ended:  # staged already, or recorded by a committed transaction
                return state
            self._ended = True
            self.task_run_state = state
            if state is None or not state.is_completed() or state.name == "Cached":
                return state  # never staged: no hook runs for it
            if parent.is_committed():  # a run the committed transaction's record does not hold: it ran, no hooks
                return state
            if not parent.is_active():
                parent._logger.warning(f"Task run {self.task_run.name!r} completed after its transaction ended; "
                                       "its commit and rollback hooks do not run")  # fmt: skip
                return state
            self.completion = next(_completions)
            parent._staged.append(self)
            self.state = TransactionState.STAGED
        return state

    def watch(self, future: RunwayFuture) -> None:
        """A submitted run: staged when its future completes; the block waits for it before it ends."""
        with self.parent._lock:
            self.parent._watched.append((self, future))
        future.add_done_callback(lambda done: self.finished(_final_state(done)))

    def run_hooks(self, kind: str, logger: logging.Logger | logging.LoggerAdapter, raise_errors: bool) -> None:
        hooks = self.task.on_commit_hooks if kind == "commit" else self.task.on_rollback_hooks[::-1]
        for hook in hooks:
            name = getattr(hook, "__name__", repr(hook))
            logger.info(f"Running on_{kind} hook {name!r} of task run {self.task_run.name!r}")
            try:
                outcome = hook(self)
                if inspect.isawaitable(outcome):
                    from sdk.engine.driver import run_coroutine

                    run_coroutine(outcome)
            except Exception:
                if raise_errors:
                    raise
                logger.exception(f"An error was encountered while running on_{kind} hook {name!r}")

    def record_rollback(self, logger: logging.Logger | logging.LoggerAdapter) -> None:
        """Mark the run RolledBack (Completed, result not kept): a retried flow run runs it again."""
        from sdk.client import get_client
        from sdk.engine.propose import propose_now

        state = Completed(name="RolledBack", message="Rolled back with its transaction")
        state.result_ref = results.UNPERSISTED
        try:
            propose_now(get_client(), state, task_run_id=self.task_run.id, force=True)
        except Exception:
            logger.exception(f"could not record that task run {self.task_run.name!r} was rolled back")

    def recorded_entry(self) -> dict[str, Any]:
        state = self.task_run_state
        return {"task_run_id": str(self.task_run.id), "name": self.task_run.name, "result": state.result_ref}

    def __repr__(self) -> str:
        return f"TaskRunTransaction(task_run={self.task_run.name!r}, state={self.state.value})"


def enroll(engine: TaskRunEngine) -> TaskRunTransaction | None:
    """Called as a task run is made: its transaction in the open block (None outside any).

    If a committed transaction around it recorded this run, the engine records
    that result instead of running the task (`engine.recorded`).
    """
    block = _current.get()
    if block is None:
        return None
    run = TaskRunTransaction(block, engine.task, engine.run)
    engine.recorded = run.recorded()
    return run


def _final_state(future: RunwayFuture) -> State | None:
    try:
        return future.final_state()
    except Exception:  # the engine itself failed: the run did not complete
        return None


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    from sdk.logging import get_logger, get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("runway.transactions")


def _persisted(ref: dict[str, Any] | None) -> bool:
    return (ref or {}).get("type") in ("json", "file")


def _named(key: str | None) -> str:
    return f" {key!r}" if key else ""
