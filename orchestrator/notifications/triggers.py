"""The hook the run services call when they write a flow run state: which rules fire, and their deliveries.

State changes are the orchestrator's hot path, so each process keeps the enabled
rules in memory (read again every RUNWAY_NOTIFICATION_RULE_CACHE_SECONDS, and at
once after this process saves a rule), and a state no rule watches costs a set
lookup. When rules do watch it, the run's flow, tags and deployment are read,
and a delivery row per matching rule is written in the state's own transaction:
it is durable exactly when the state is, and (rule, state) is unique, so one
transition is never notified twice. The delivery ids go to the workers after the
commit. A problem here is logged, never raised: a notification must not undo a
state change.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from orchestrator.notifications import dispatch
from orchestrator.notifications.models import NotificationDelivery, NotificationRule
from orchestrator.notifications.vocabulary import split_states
from orchestrator.runs.models import FlowRun
from orchestrator.schemas import State

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Watch:
    """What an enabled rule watches, as sets (empty run filters match any run)."""

    rule_id: int
    types: frozenset[str]
    names: frozenset[str]
    flow_names: frozenset[str]
    tags: frozenset[str]
    deployment_ids: frozenset[str]

    def wants_state(self, state: State) -> bool:
        return state.type.value in self.types or state.name in self.names

    def wants_run(self, run: dict[str, Any]) -> bool:
        return ((not self.flow_names or run["flow__name"] in self.flow_names)
                and (not self.tags or not self.tags.isdisjoint(map(str, run["tags"] or [])))
                and (not self.deployment_ids or str(run["deployment_id"]) in self.deployment_ids))  # fmt: skip


_cache: dict[str, Any] = {"watches": (), "until": 0.0}


def forget_rules() -> None:
    """This process changed a rule: read them again before the next state change."""
    _cache["until"] = 0.0


def enabled_watches() -> tuple[Watch, ...]:
    """The enabled rules as this process last read them (again once RUNWAY_NOTIFICATION_RULE_CACHE_SECONDS
    have passed). If they cannot be read, the last ones serve: a state change must not fail for this."""
    if time.monotonic() < _cache["until"]:
        return _cache["watches"]
    try:
        with transaction.atomic():  # a savepoint inside a state's transaction: a failure here stays here
            watches = _watches(NotificationRule.objects.filter(enabled=True))
    except Exception:
        log.exception("could not read the notification rules; trying again at the next state change")
        return _cache["watches"]
    _cache["watches"] = watches
    _cache["until"] = time.monotonic() + settings.RUNWAY_NOTIFICATION_RULE_CACHE_SECONDS
    return _cache["watches"]


def flow_run_state_written(*, flow_run_id: UUID, state: State) -> None:
    """Called inside the transaction that wrote `state` for the flow run: record the deliveries of
    the rules that fire, and send them to the workers once it commits."""
    watches = [watch for watch in enabled_watches() if watch.wants_state(state)]
    if not watches:
        return
    try:
        with transaction.atomic():
            ids = _deliveries_create(flow_run_id, state, watches)
    except Exception:
        log.exception("notifications for flow run %s entering %s were not recorded", flow_run_id, state.name)
        return
    if ids:
        transaction.on_commit(lambda: dispatch.delivery_publish(delivery_ids=ids), robust=True)


def _deliveries_create(flow_run_id: UUID, state: State, watches: list[Watch]) -> list[UUID]:
    """One delivery per rule that still wants this run and state (the rules read again, not from the cache)."""
    run = FlowRun.objects.filter(pk=flow_run_id).values("flow__name", "tags", "deployment_id").first()
    if run is None:
        return []
    fresh = _watches(NotificationRule.objects.filter(pk__in=[w.rule_id for w in watches], enabled=True))
    now = timezone.now()
    rows = [
        NotificationDelivery(rule_id=watch.rule_id, flow_run_id=flow_run_id, state_id=state.id, state_type=state.type.value,
                             state_name=state.name, next_attempt_at=now)
        for watch in fresh if watch.wants_state(state) and watch.wants_run(run)
    ]  # fmt: skip
    NotificationDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return [row.pk for row in rows]


def _watches(rules: QuerySet[NotificationRule]) -> tuple[Watch, ...]:
    rows = rules.values_list("pk", "states", "flow_names", "tags", "deployment_ids")
    return tuple(Watch(pk, *split_states(states), frozenset(flows), frozenset(tags), frozenset(map(str, deployments)))
                 for pk, states, flows, tags, deployments in rows)  # fmt: skip
