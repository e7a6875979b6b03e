"""Deployments and work queues in the admin: useful columns, filters, search, and actions (run now,
run with parameters, pause, resume), each through the services as the CLI and API go.

Deployments are made by deploying a flow (its code is copied then), so the admin shows and
changes them but does not add them."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from orchestrator.deployments import services
from orchestrator.deployments.models import Deployment, WorkQueue
from orchestrator.exceptions import InvalidInput, ObjectNotFound


@admin.register(WorkQueue)
class WorkQueueAdmin(admin.ModelAdmin):
    list_display = ["name", "priority", "is_paused", "concurrency_limit", "filter_tags", "deployment_count",
                    "ui_link", "updated"]  # fmt: skip
    list_filter = ["is_paused", ("concurrency_limit", admin.EmptyFieldListFilter)]
    search_fields = ["name", "description"]
    filter_horizontal = ["filter_deployments"]
    readonly_fields = ["created", "updated"]
    actions = ["pause", "resume"]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(deployment_count=Count("deployments"))

    @admin.display(description="Deployments", ordering="deployment_count")
    def deployment_count(self, queue: WorkQueue) -> int:
        return queue.deployment_count

    @admin.display(description="Dashboard")
    def ui_link(self, queue: WorkQueue) -> str:
        return format_html('<a href="{}">Runs and preview</a>', reverse("ui:work-queue", args=[queue.name]))

    @admin.action(description="Pause the selected work queues")
    def pause(self, request: HttpRequest, queryset) -> None:
        for name in queryset.values_list("name", flat=True):
            services.work_queue_set_paused(name=name, paused=True)
        self.message_user(request, f"Paused {queryset.count()} work queue(s): they release no runs until resumed.",
                          messages.SUCCESS)  # fmt: skip

    @admin.action(description="Resume the selected work queues")
    def resume(self, request: HttpRequest, queryset) -> None:
        for name in queryset.values_list("name", flat=True):
            services.work_queue_set_paused(name=name, paused=False)
        self.message_user(request, f"Resumed {queryset.count()} work queue(s).", messages.SUCCESS)


class DeploymentRunForm(forms.Form):
    """Run a deployment with parameters over its defaults (JSON), now or at a given time."""

    parameters = forms.JSONField(initial=dict, help_text="A JSON object; parameters left out take the deployment's defaults.")
    scheduled_time = forms.DateTimeField(required=False, help_text="Empty: now. Otherwise YYYY-MM-DD HH:MM:SS.")

    def clean_parameters(self) -> dict:
        value = self.cleaned_data["parameters"]
        if not isinstance(value, dict):
            raise forms.ValidationError('Give a JSON object, e.g. {"msg": "Hello"}.')
        return value


class DeploymentChangeForm(forms.ModelForm):
    """Default parameters edited here are checked against the flow's parameters, as at deployment."""

    class Meta:
        model = Deployment
        fields = ["description", "version", "work_queue", "tags", "parameters"]

    def clean_parameters(self) -> dict:
        value = self.cleaned_data["parameters"]
        if not isinstance(value, dict):
            raise forms.ValidationError('Give a JSON object, e.g. {"msg": "Hello"}.')
        try:
            services.check_parameters(value, self.instance.parameter_schema, str(self.instance))
        except InvalidInput as exc:
            raise forms.ValidationError(str(exc)) from None
        return value


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    form = DeploymentChangeForm
    list_display = ["__str__", "work_queue", "is_paused", "schedule_list", "version", "short_code_version", "run_link",
                    "updated"]  # fmt: skip
    list_filter = ["is_paused", "work_queue", "flow"]
    search_fields = ["name", "flow__name", "description", "entrypoint"]
    list_select_related = ["flow", "work_queue"]
    readonly_fields = ["flow", "name", "is_paused", "entrypoint", "source", "code_path", "code_version",
                       "empirical_policy", "parameter_schema", "schedule_list", "created", "updated"]  # fmt: skip
    fields = ["flow", "name", "description", "version", "work_queue", "tags", "parameters", "is_paused",
              "schedule_list", "empirical_policy", "entrypoint", "source", "code_path", "code_version",
              "parameter_schema", "created", "updated"]  # fmt: skip
    actions = ["run_now", "pause", "resume"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a deployment is made by deploying the flow's code: `deployment create` or `flow.deploy()`

    def get_urls(self) -> list:
        run = self.admin_site.admin_view(self.run_view)
        return [path("<uuid:pk>/run/", run, name="deployments_deployment_run"), *super().get_urls()]

    @admin.display(description="Code")
    def short_code_version(self, deployment: Deployment) -> str:
        return deployment.code_version[:12]

    @admin.display(description="Schedules")
    def schedule_list(self, deployment: Deployment) -> str:
        return "; ".join(str(row) for row in deployment.schedules.all()) or "none"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("schedules")

    @admin.display(description="Run")
    def run_link(self, deployment: Deployment) -> str:
        return format_html('<a href="{}">Run with parameters</a>', reverse("admin:deployments_deployment_run", args=[deployment.pk]))

    def run_view(self, request: HttpRequest, pk: str) -> HttpResponse:
        """A form to run one deployment with parameters of the user's choosing."""
        try:
            deployment = services.deployment_get(ref=str(pk))
        except ObjectNotFound as missing:
            raise Http404(str(missing)) from None
        if not self.has_change_permission(request, deployment):
            raise PermissionDenied
        form = DeploymentRunForm(request.POST or None, initial={"parameters": deployment.parameters})
        if request.method == "POST" and form.is_valid():
            try:
                run = services.deployment_run_create(ref=str(pk), **form.cleaned_data)
            except InvalidInput as exc:
                form.add_error("parameters", str(exc))
            else:
                self.message_user(request, f"Created flow run {run.name!r} ({run.id}) of {deployment}.", messages.SUCCESS)
                return redirect("admin:deployments_deployment_changelist")
        context = {**self.admin_site.each_context(request), "title": f"Run {deployment}", "form": form,
                   "deployment": deployment, "opts": self.model._meta}  # fmt: skip
        return TemplateResponse(request, "admin/deployments/deployment/run.html", context)

    @admin.action(description="Run the selected deployments now, with their default parameters")
    def run_now(self, request: HttpRequest, queryset) -> None:
        for deployment in queryset.select_related("flow"):
            try:
                run = services.deployment_run_create(ref=str(deployment.pk))
            except InvalidInput as exc:
                self.message_user(request, f"{deployment}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Created flow run {run.name!r} of {deployment}.", messages.SUCCESS)

    @admin.action(description="Pause the selected deployments", permissions=["change"])
    def pause(self, request: HttpRequest, queryset) -> None:
        for deployment in queryset:
            services.deployment_set_paused(ref=str(deployment.pk), paused=True)
        self.message_user(request, f"Paused {len(queryset)} deployment(s); their upcoming scheduled runs were removed.",
                          messages.SUCCESS)  # fmt: skip

    @admin.action(description="Resume the selected deployments", permissions=["change"])
    def resume(self, request: HttpRequest, queryset) -> None:
        for deployment in queryset:
            services.deployment_set_paused(ref=str(deployment.pk), paused=False)
        self.message_user(request, f"Resumed {len(queryset)} deployment(s).", messages.SUCCESS)
