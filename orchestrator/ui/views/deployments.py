"""Pages about deployments and work queues, with their buttons (run, pause, resume)."""
from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Min, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from orchestrator.deployments import selectors, services
from orchestrator.deployments.models import Deployment, WorkQueue
from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.runs.models import FlowRun
from orchestrator.ui import cursors
from orchestrator.ui.dashboard import queue_health
from orchestrator.ui.forms import ParametersForm, QueueLimitForm
from orchestrator.ui.views.common import act, filter_context, read_filter, render_filtered


def _deployment(deployment_id: UUID) -> Deployment:
    try:
        return services.deployment_get(ref=str(deployment_id))
    except ObjectNotFound as error:
        raise Http404(str(error)) from None


@login_required
def deployments_page(request: HttpRequest) -> HttpResponse:
    """Deployments with their schedules in words and next run; filtered by name, flow, tag and status."""
    rows = (selectors.deployment_list().prefetch_related("schedules")
            .annotate(next_run=Min("flow_runs__next_scheduled_start_time", filter=Q(flow_runs__state_type="SCHEDULED"))))  # fmt: skip
    search, flow, tag = (request.GET.get(k, "").strip() for k in ("q", "flow", "tag"))
    status = request.GET.get("status", "")
    if search:
        rows = rows.filter(Q(name__icontains=search) | Q(flow__name__icontains=search))
    if flow:
        rows = rows.filter(flow__name=flow)
    if status in ("paused", "active"):
        rows = rows.filter(is_paused=status == "paused")
    found = [d for d in rows[:1000] if not tag or tag in (d.tags or [])][:500]
    flows = Deployment.objects.order_by("flow__name").values_list("flow__name", flat=True).distinct()
    context = {"deployments": found, "search": search, "flow": flow, "tag": tag, "status": status, "flows": flows}
    return render(request, "ui/deployments.html", context)


@login_required
def deployment_page(request: HttpRequest, deployment_id: UUID) -> HttpResponse:
    deployment = _deployment(deployment_id)
    detail = selectors.deployment_detail(ref=str(deployment.pk))
    run_filter, error = read_filter(request)
    run_filter.deployments = [str(deployment.pk)]
    runs = run_filter.apply(FlowRun.objects.select_related("flow", "deployment"))
    page = cursors.paginate(runs, after=request.GET.get("after"), before=request.GET.get("before"))
    context = {**filter_context(run_filter, error), "deployment": deployment, "detail": detail, "page": page,
               "fixed_deployment": True, "live": {"page": "runs"}}  # fmt: skip
    return render_filtered(request, "ui/deployment.html", context, error)


@login_required
@require_POST
def deployment_quick_run(request: HttpRequest, deployment_id: UUID) -> HttpResponse:
    deployment = _deployment(deployment_id)
    try:
        run = services.deployment_run_create(ref=str(deployment.pk))
    except InvalidInput as error:
        messages.error(request, f"{error}. Use “Run with parameters” to give them.")
        return redirect("ui:deployment", deployment_id=deployment.pk)
    messages.success(request, f"Created run {run.name}: its work queue releases it to an agent")
    return redirect("ui:flow-run", run_id=run.pk)


@login_required
def deployment_run_form(request: HttpRequest, deployment_id: UUID) -> HttpResponse:
    deployment = _deployment(deployment_id)
    form = ParametersForm(deployment.parameter_schema, deployment.parameters, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = services.deployment_run_create(ref=str(deployment.pk), parameters=form.parameters())
        except InvalidInput as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Created run {run.name} with parameters {form.parameters()}")
            return redirect("ui:flow-run", run_id=run.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "ui/deployment_run.html", {"deployment": deployment, "form": form}, status=status)


@login_required
@permission_required("deployments.change_deployment", raise_exception=True)
@require_POST
def deployment_pause(request: HttpRequest, deployment_id: UUID, paused: bool) -> HttpResponse:
    def change() -> str:
        done = services.deployment_set_paused(ref=str(deployment_id), paused=paused)
        return f"Deployment {done} is {'paused' if paused else 'active'}"

    return act(request, change, f"/deployments/{deployment_id}/")


@login_required
def work_queues_page(request: HttpRequest) -> HttpResponse:
    health = queue_health()
    shown = request.GET.get("status") or ""
    search = (request.GET.get("q") or "").strip()
    if shown:
        health = [row for row in health if row["status"].replace(" ", "-") == shown]
    if search:
        health = [row for row in health if search.lower() in row["queue"].name.lower()]
    statuses = [("healthy", "Healthy"), ("late-runs", "Late runs"), ("paused", "Paused")]
    context = {"health": health, "status": shown, "search": search, "statuses": statuses}
    return render(request, "ui/work_queues.html", context)


@login_required
def work_queue_page(request: HttpRequest, name: str) -> HttpResponse:
    try:
        detail = selectors.work_queue_detail(name=name)
        preview = selectors.work_queue_preview(name=name, limit=50)
    except ObjectNotFound as error:
        raise Http404(str(error)) from None
    pending = FlowRun.objects.filter(work_queue_name=name, state_type__in=["PENDING", "RUNNING"]).select_related("flow")
    queue = WorkQueue.objects.get(name=name)
    context = {"queue": queue, "detail": detail, "preview": preview, "active": pending.order_by("-expected_start_time")[:50],
               "limit_form": QueueLimitForm(initial={"limit": queue.concurrency_limit})}  # fmt: skip
    return render(request, "ui/work_queue.html", context)


@login_required
@require_POST
def work_queue_pause(request: HttpRequest, name: str, paused: bool) -> HttpResponse:
    def change() -> str:
        queue = services.work_queue_set_paused(name=name, paused=paused)
        return f"Work queue {queue.name} is {'paused' if paused else 'active'}"

    return act(request, change, f"/work-queues/{name}/")


@login_required
@require_POST
def work_queue_limit(request: HttpRequest, name: str) -> HttpResponse:
    form = QueueLimitForm(request.POST)

    def change() -> str:
        if not form.is_valid():
            raise InvalidInput("; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        queue = services.work_queue_set_concurrency_limit(name=name, limit=form.cleaned_data["limit"])
        return f"Work queue {queue.name}: concurrency limit {queue.concurrency_limit or 'none'}"

    return act(request, change, f"/work-queues/{name}/")
