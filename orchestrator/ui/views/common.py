"""What every page shares: the filter from the URL, and turning service errors into messages."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from orchestrator.deployments.models import Deployment
from orchestrator.exceptions import InvalidInput, ObjectNotFound
from orchestrator.runs.models import Flow
from orchestrator.ui.filters import RANGE_LABELS, STATE_TYPES, RunFilter

FILTER_CHOICES_LIMIT = 500  # flows and deployments offered in the filter's lists


def read_filter(request: HttpRequest, default_range: str = "all") -> tuple[RunFilter, str | None]:
    """The page's filter, or an empty one and the error naming what is wrong with the URL."""
    try:
        return RunFilter.from_query(request.GET, default_range), None
    except InvalidInput as error:
        return RunFilter(range=default_range), str(error)


def filter_context(run_filter: RunFilter, error: str | None) -> dict[str, Any]:
    """What the filter bar needs: the current filter and the choices it offers."""
    deployments = Deployment.objects.select_related("flow").order_by("flow__name", "name")[:FILTER_CHOICES_LIMIT]
    return {
        "filter": run_filter, "filter_error": error, "state_types": STATE_TYPES, "range_labels": RANGE_LABELS,
        "flow_names": list(Flow.objects.order_by("name").values_list("name", flat=True)[:FILTER_CHOICES_LIMIT]),
        "deployment_choices": [(str(d.pk), str(d)) for d in deployments],
    }  # fmt: skip


def render_filtered(request: HttpRequest, template: str, context: dict[str, Any], error: str | None) -> HttpResponse:
    return render(request, template, context, status=400 if error else 200)


def act(request: HttpRequest, action: Callable[[], str], back: str) -> HttpResponse:
    """Run a service for a button; its answer or its error becomes a message on the page it came from
    (the form's `back` field, if it names a page of this site, else `back`)."""
    asked = request.POST.get("back")
    if asked and url_has_allowed_host_and_scheme(asked, allowed_hosts={request.get_host()}):
        back = asked
    try:
        messages.success(request, action())
    except (InvalidInput, ObjectNotFound) as error:
        messages.error(request, str(error))
    return redirect(back)


def user_label(request: HttpRequest) -> str:
    return f"{request.user.get_username()} (UI)"
