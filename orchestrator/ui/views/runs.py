"""Pages about runs: the dashboard, flows, flow runs and task runs, and the buttons on a run."""
from __future__ import annotations

import json

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from orchestrator.deployments.models import Deployment
from orchestrator.deployments.services import deployment_run_retry
from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.runs import selectors
from orchestrator.runs.models import FlowRun, TaskRun
from orchestrator.runs.pauses import flow_run_resume
from orchestrator.runs.services import flow_run_cancel
from orchestrator.schemas import TERMINAL_TYPES
from orchestrator.ui import charts, cursors, dashboard, logs
from orchestrator.ui.filters import RANGE_LABELS
from orchestrator.ui.views.common import act, filter_context, read_filter, render_filtered, user_label

GRAPH_LIMIT = 300  # task runs drawn in a flow run's timeline and graph
FINISHED = [t.value for t in TERMINAL_TYPES]


@login_required
def dashboard_page(request: HttpRequest) -> HttpResponse:
    run_filter, error = read_filter(request, default_range="24h")
    context = {**filter_context(run_filter, error), **dashboard.summary(run_filter), "live": {"page": "runs"}}
    return render_filtered(request, "ui/dashboard.html", context, error)


@login_required
def flows_page(request: HttpRequest) -> HttpResponse:
    """Each flow's newest run and its success rate over the chosen time range (7 days by default)."""
    run_filter, error = read_filter(request, default_range="7d")
    since, _ = run_filter.window()
    flows = list(selectors.flow_list_with_last_run()[:500])
    stats = selectors.flow_run_stats_by_flow(since=since)
    deployments = dict(Deployment.objects.order_by().values_list("flow_id").annotate(n=Count("id")))
    for flow in flows:
        flow.stats = stats.get(flow.pk, {"total": 0, "completed": 0, "finished": 0})
        flow.deployment_count = deployments.get(flow.pk, 0)
    context = {"flows": flows, "filter": run_filter, "filter_error": error,
               "range_labels": [r for r in RANGE_LABELS if r[0] != "custom"]}  # fmt: skip
    return render_filtered(request, "ui/flows.html", context, error)


@login_required
def flow_page(request: HttpRequest, name: str) -> HttpResponse:
    try:
        flow = selectors.flow_get(name=name)
    except ObjectNotFound as error:
        raise Http404(str(error)) from None
    run_filter, error = read_filter(request)
    run_filter.flows = [flow.name]
    page = _page(request, run_filter.apply(FlowRun.objects.select_related("flow", "deployment")))
    context = {**filter_context(run_filter, error), "flow": flow, "page": page, "fixed_flow": True,
               "deployments": Deployment.objects.filter(flow=flow).select_related("work_queue"),
               "live": {"page": "runs"}}  # fmt: skip
    return render_filtered(request, "ui/flow.html", context, error)


@login_required
def flow_runs_page(request: HttpRequest) -> HttpResponse:
    run_filter, error = read_filter(request)
    page = _page(request, run_filter.apply(FlowRun.objects.select_related("flow", "deployment")))
    context = {**filter_context(run_filter, error), "page": page, "saved_page": "flow_runs", "live": {"page": "runs"}}
    return render_filtered(request, "ui/flow_runs.html", context, error)


@login_required
def task_runs_page(request: HttpRequest) -> HttpResponse:
    run_filter, error = read_filter(request)
    page = _page(request, run_filter.apply(TaskRun.objects.select_related("flow_run__flow")))
    context = {**filter_context(run_filter, error), "page": page, "saved_page": "task_runs"}
    return render_filtered(request, "ui/task_runs.html", context, error)


def _page(request: HttpRequest, runs) -> cursors.Page:
    try:
        return cursors.paginate(runs, after=request.GET.get("after"), before=request.GET.get("before"))
    except InvalidInput as error:
        raise Http404(str(error)) from None


@login_required
def flow_run_page(request: HttpRequest, run_id: UUID) -> HttpResponse:
    run = _get(selectors.flow_run_get, flow_run_id=run_id)
    task_runs = list(selectors.task_run_list(flow_run_id=run.pk)[: GRAPH_LIMIT + 1])
    subflows = list(FlowRun.objects.filter(parent_flow_run=run).select_related("flow").order_by("expected_start_time")[:GRAPH_LIMIT])
    now = timezone.now()
    rows = sorted(task_runs[:GRAPH_LIMIT] + subflows, key=lambda r: (r.start_time or r.expected_start_time or now))
    for row in rows:
        row.kind = "task" if isinstance(row, TaskRun) else "subflow"
    log_page = logs.read(request, flow_run_id=run.pk)
    context = {
        "run": run, "task_runs": task_runs[:GRAPH_LIMIT], "more_task_runs": len(task_runs) > GRAPH_LIMIT,
        "subflows": subflows, "timeline": charts.timeline(rows, now), "timeline_rows": rows,
        "graph": charts.graph(task_runs[:GRAPH_LIMIT]), "states": selectors.flow_run_states(flow_run_id=run.pk),
        "logs": log_page, "can_cancel": run.state_type not in FINISHED, "pause": _pause(run),
        "can_retry": run.deployment_id is not None and run.state_type in ("FAILED", "CRASHED", "CANCELLED"),
        "live": {"page": "flow_run", "id": str(run.pk), "log_after": log_page.last_id if not log_page.older else None},
    }  # fmt: skip
    return render(request, "ui/flow_run.html", context)


@login_required
def task_run_page(request: HttpRequest, run_id: UUID) -> HttpResponse:
    run = _get(selectors.task_run_get, task_run_id=run_id)
    context = {"run": run, "states": selectors.task_run_states(task_run_id=run.pk),
               "logs": logs.read(request, task_run_id=run.pk)}  # fmt: skip
    return render(request, "ui/task_run.html", context)


def _get(selector, **ids):
    try:
        return selector(**ids)
    except ObjectNotFound as error:
        raise Http404(str(error)) from None


@login_required
@require_POST
def flow_run_cancel_action(request: HttpRequest, run_id: UUID) -> HttpResponse:
    def cancel() -> str:
        result = flow_run_cancel(flow_run_id=run_id, by=user_label(request))
        return f"The run is now {result.state.name}" if result.state else "Cancel requested"

    return act(request, cancel, f"/runs/{run_id}/")


def _pause(run: FlowRun) -> dict | None:
    """For a Paused run, what the Resume form needs: the input schema, if the pause waits for input."""
    if run.state_type != "PAUSED" or not run.state_id:
        return None
    key = (run.state.details or {}).get("pause_key") or ""
    schema = ((run.run_input or {}).get(key) or {}).get("schema")
    return {"schema": schema, "suspended": bool((run.state.details or {}).get("pause_reschedule"))}


@login_required
@require_POST
def flow_run_resume_action(request: HttpRequest, run_id: UUID) -> HttpResponse:
    """Resume a paused run; the input, if any, is JSON typed in the form (checked against the pause's schema)."""
    def resume() -> str:
        text = request.POST.get("run_input", "").strip()
        try:
            value = json.loads(text) if text else None
        except json.JSONDecodeError as error:
            raise InvalidInput(f"the input is not valid JSON: {error}") from None
        result = flow_run_resume(flow_run_id=run_id, run_input=value, by=user_label(request))
        return f"The run is now {result.state.name}"

    return act(request, resume, f"/runs/{run_id}/")


@login_required
@require_POST
def flow_run_retry_action(request: HttpRequest, run_id: UUID) -> HttpResponse:
    def retry() -> str:
        run = deployment_run_retry(flow_run_id=run_id, by=user_label(request))
        return f"The run is {run.state_name}: its work queue {run.work_queue_name!r} releases it to an agent"

    return act(request, retry, f"/runs/{run_id}/")
