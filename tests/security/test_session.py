"""Browser sessions: a write without the CSRF token is refused, everywhere; and no GET changes data
(every GET route of the API, the UI and the admin, walked by a logged-in superuser, leaves every table
as it found it)."""
from __future__ import annotations

import re
import uuid
from datetime import datetime

from django.apps import apps
from django.db import models

from tests.security.conftest import log_in
from tests.security.routes import every_route
from tests.security.test_access import WRITE_METHODS, _operations


def test_session_writes_without_the_csrf_token_are_refused_everywhere(live_server, make_user, make_token):
    admin = make_user(superuser=True)
    browser = log_in(live_server, admin.username, origin=False)
    assert browser.get("/api/flows/").status_code == 200  # the session reads

    writes = [(method, path) for method, path, _ in _operations(live_server, make_token("read"))
              if method.lower() in WRITE_METHODS]  # fmt: skip
    for method, path in writes:
        answer = browser.request(method, path, json={})
        assert answer.status_code == 403 and "CSRF" in answer.json()["detail"], (method, path, answer.text[:200])
    pages = [route.path for route in every_route() if not route.path.startswith("/api/")]
    for path in pages:
        assert browser.post(path, data={"name": "x"}).status_code == 403, path

    with_token = browser.post("/api/flows/", json={"name": f"csrf-{uuid.uuid4().hex[:6]}"},
                              headers={"X-CSRFToken": browser.cookies["csrftoken"], "Referer": live_server + "/"})  # fmt: skip
    assert with_token.status_code == 201  # the same session with its token writes
    print(f"session writes without CSRF token refused: {len(writes)} API operations, {len(pages)} UI and admin routes")


# Tables a GET may change, and why: the session holds the browser's flash messages (MESSAGE_STORAGE is
# the session), which the admin adds when it redirects from an unknown object's page and a page drops
# once it has shown them.
SESSION_STATE = {"django_session"}


def test_no_get_changes_data(live_server, make_user, deployer_token, stored_flow):
    """Real objects of every kind first, so that detail pages, admin change and delete pages are
    shown for them; then every GET route, and the tables compared."""
    admin = make_user(superuser=True)
    real = _objects(stored_flow)
    browser = log_in(live_server, admin.username)
    before = _snapshot()

    statuses: dict[int, int] = {}
    failed = []
    routes = [route for route in every_route(real.value) if not route.path.endswith("logout/")]
    for route in routes:
        status = browser.get(route.path).status_code
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 500:
            failed.append(route.path)
    assert browser.get("/").status_code == 200  # still logged in: the walk ran as the superuser

    after = _snapshot()
    changed = {table: (before.get(table), after.get(table)) for table in before.keys() | after.keys()
               if before.get(table) != after.get(table) and table not in SESSION_STATE}  # fmt: skip
    assert not changed
    assert not failed, failed
    assert statuses.get(200, 0) > 100, statuses
    print(f"{len(routes)} GET routes walked as a superuser (statuses {dict(sorted(statuses.items()))}); "
          f"{len(before)} tables unchanged (row counts and latest times)")


class _Objects:
    """Real objects of each kind, and the route parameter values naming them."""

    def __init__(self, rules: list[tuple[str, object]]) -> None:
        self.rules = rules  # (what the route's pattern starts with, the value of its parameter), first match wins

    def value(self, pattern: str, parameter: str) -> object:
        if parameter == "format":
            return "json"
        if parameter == "verb":
            return "delete"  # the most damaging of a rule's buttons: a GET must not do it
        if pattern.startswith("admin/") and parameter in ("object_id", "id", "pk"):
            found = re.match(r"admin/(\w+)/(\w+)/", pattern)
            row = apps.get_model(found.group(1), found.group(2)).objects.order_by("pk").first() if found else None
            return row.pk if row else None
        return next((value for prefix, value in self.rules if pattern.startswith(prefix)), None)


def _objects(stored_flow) -> _Objects:
    from django.contrib.auth import get_user_model

    from orchestrator.accounts.services import token_create
    from orchestrator.deployments.services import (
        deployment_create,
        deployment_run_create,
        work_queue_create,
    )
    from orchestrator.limits.services import concurrency_limit_create
    from orchestrator.notifications.services import notification_rule_create
    from orchestrator.runs.services import task_run_create
    from orchestrator.schemas import State, StateType
    from orchestrator.ui.models import SavedView

    tag = f"walk-{uuid.uuid4().hex[:6]}"
    queue = work_queue_create(name=tag)
    deployment, _ = deployment_create(flow_name=tag, name="d", entrypoint="flows.py:f", code_path=str(stored_flow()),
                                      code_version="e" * 64, work_queue_name=queue.name,
                                      schedules=[{"cron": "0 9 * * *"}])  # fmt: skip
    run = deployment_run_create(ref=str(deployment.pk))
    task, _ = task_run_create(flow_run_id=run.pk, task_key=f"{tag}.t", dynamic_key="0", name="t-0",
                              state=State(StateType.PENDING))
    concurrency_limit_create(tag=tag, limit=3)
    rule = notification_rule_create(name=tag, channel="email", target="oncall@example.com", states=["Failed"],
                                    flow_names=[tag])  # fmt: skip
    owner = get_user_model().objects.create_user(username=f"{tag}-owner")
    token_create(user=owner, name=tag)
    view = SavedView.objects.create(user=owner, name=tag, page="flow_runs", query="state=FAILED")
    return _Objects([
        ("api/^flow_runs/", run.pk), ("api/^task_runs/", task.pk), ("api/^flows/", deployment.flow_id),
        ("api/^work_queues/", queue.name), ("api/^deployments/", deployment.pk), ("api/^concurrency_limits/", tag),
        ("api/^notifications/", rule.pk), ("task-runs/", task.pk), ("runs/", run.pk), ("flows/", tag),
        ("deployments/", deployment.pk), ("work-queues/", queue.name), ("notifications/", rule.pk), ("views/", view.pk),
    ])  # fmt: skip


def _snapshot() -> dict[str, tuple[int, tuple[datetime | None, ...]]]:
    """Every table's row count and the latest value of each of its date-time columns."""
    found = {}
    for model in apps.get_models(include_auto_created=True):
        times = [field.name for field in model._meta.concrete_fields if isinstance(field, models.DateTimeField)]
        latest = model.objects.aggregate(**{f"latest_{name}": models.Max(name) for name in times}) if times else {}
        found[model._meta.db_table] = (model.objects.count(), tuple(latest.values()))
    return found
