"""Creating and deleting limits, and taking and giving back their slots.

Slots are taken by the `SecureTaskConcurrencySlots` rule when a task run
proposes Running, and given back when it leaves Running (the
`release_concurrency_slots` bookkeeping step), whatever moves it: its worker, a
sweep that found its worker dead, its flow run crashing or being cancelled.
A slot whose run is no longer Running by any other path (a row edited by hand,
a run deleted) is not counted, and is cleared when the limit is next checked.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.utils import timezone

from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.limits.models import ConcurrencyLimit, ConcurrencySlot
from orchestrator.schemas import StateType

MAX_TAG_LENGTH = 255
MAX_LIMIT = 2**31 - 1  # what the column holds


def concurrency_limit_create(*, tag: str, limit: int) -> tuple[ConcurrencyLimit, bool]:
    """Set the limit for `tag`, creating it if new; returns (limit, created).

    Lowering a limit below the runs holding slots stops nothing: the runs
    finish, and new ones wait until fewer than the new limit run.
    """
    tag = _valid_tag(tag)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"concurrency limit for tag {tag!r} must be a whole number from 0 to {MAX_LIMIT}, not {limit!r}")
    row, created = ConcurrencyLimit.objects.update_or_create(tag=tag, defaults={"concurrency_limit": limit})
    return row, created


def concurrency_limit_get(*, tag: str) -> ConcurrencyLimit:
    try:
        return ConcurrencyLimit.objects.get(tag=tag)
    except ConcurrencyLimit.DoesNotExist:
        raise ObjectNotFound(
            f"no concurrency limit for tag {tag!r}; list them with `python manage.py concurrency-limit ls`"
        ) from None


def concurrency_limit_delete(*, tag: str) -> None:
    """Remove the limit: runs waiting for one of its slots start at their next try."""
    concurrency_limit_get(tag=tag).delete()


@dataclass
class SlotAnswer:
    """What taking slots gave: `taken` the limits now held; else `full` names the limit in the way."""

    taken: list[int]
    full: ConcurrencyLimit | None = None
    held: int = 0


def slots_take(*, task_run_id: UUID, tags: Iterable[str], now: datetime | None = None) -> SlotAnswer:
    """Take one slot of every limit on `tags` for the run, or none if one is full.

    Must run inside the transaction that writes the run's Running state: the
    limit rows stay locked until it commits, so the count cannot go stale.
    Rows are locked in tag order, so two runs with the same tags never deadlock.
    """
    limits = list(ConcurrencyLimit.objects.select_for_update().filter(tag__in=set(tags)).order_by("tag"))
    if not limits:
        return SlotAnswer(taken=[])
    for limit in limits:
        _clear_stale(limit, task_run_id)
        held = ConcurrencySlot.objects.filter(limit=limit).exclude(task_run_id=task_run_id).count()
        if held >= limit.concurrency_limit:
            return SlotAnswer(taken=[], full=limit, held=held)
    now = now or timezone.now()
    slots = [ConcurrencySlot(limit=limit, task_run_id=task_run_id, acquired=now) for limit in limits]
    ConcurrencySlot.objects.bulk_create(slots, ignore_conflicts=True)
    return SlotAnswer(taken=[limit.pk for limit in limits])


def _clear_stale(limit: ConcurrencyLimit, task_run_id: UUID) -> None:
    """Drop slots of runs that left Running without giving them back (they only count while Running)."""
    stale = limit.slots.exclude(task_run__state_type=StateType.RUNNING.value).exclude(task_run_id=task_run_id)
    stale.delete()


def slots_release(*, task_run_id: UUID, limit_ids: Iterable[int] | None = None) -> int:
    """Give back the run's slots (only those of `limit_ids` if given); returns how many."""
    slots = ConcurrencySlot.objects.filter(task_run_id=task_run_id)
    if limit_ids is not None:
        slots = slots.filter(limit_id__in=list(limit_ids))
    deleted, _ = slots.delete()
    return deleted


def _valid_tag(tag: str) -> str:
    if not isinstance(tag, str) or not tag.strip():
        raise InvalidInput("a concurrency limit needs a tag: a non-empty name, e.g. `database`")
    tag = tag.strip()
    if len(tag) > MAX_TAG_LENGTH:
        raise InvalidInput(f"tag {tag[:40]!r}... is {len(tag)} characters long; at most {MAX_TAG_LENGTH} are allowed")
    return tag
