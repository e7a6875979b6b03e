"""Deployments and work queues in the admin: useful columns, filters, search, pause and resume actions.

Deployments are made by deploying a flow (its code is copied then), so the admin shows and
changes them but does not add them."""
from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from orchestrator.deployments.models import Deployment, WorkQueue


@admin.register(WorkQueue)
class WorkQueueAdmin(admin.ModelAdmin):
    list_display = ["name", "priority", "is_paused", "concurrency_limit", "filter_tags", "updated"]
    list_filter = ["is_paused"]
    search_fields = ["name", "description"]
    filter_horizontal = ["filter_deployments"]
    readonly_fields = ["created", "updated"]
    actions = ["pause", "resume"]

    @admin.action(description="Pause the selected work queues")
    def pause(self, request: HttpRequest, queryset) -> None:
        count = queryset.update(is_paused=True)
        self.message_user(request, f"Paused {count} work queue(s): they release no runs until resumed.", messages.SUCCESS)

    @admin.action(description="Resume the selected work queues")
    def resume(self, request: HttpRequest, queryset) -> None:
        count = queryset.update(is_paused=False)
        self.message_user(request, f"Resumed {count} work queue(s).", messages.SUCCESS)


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["__str__", "work_queue", "is_paused", "version", "short_code_version", "updated"]
    list_filter = ["is_paused", "work_queue"]
    search_fields = ["name", "flow__name", "description", "entrypoint"]
    list_select_related = ["flow", "work_queue"]
    readonly_fields = ["flow", "name", "entrypoint", "source", "code_path", "code_version", "parameter_schema",
                       "created", "updated"]  # fmt: skip
    fields = ["flow", "name", "description", "version", "work_queue", "tags", "parameters", "is_paused", "entrypoint",
              "source", "code_path", "code_version", "parameter_schema", "created", "updated"]  # fmt: skip
    actions = ["pause", "resume"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a deployment is made by deploying the flow's code: `deployment create` or `flow.deploy()`

    @admin.display(description="Code")
    def short_code_version(self, deployment: Deployment) -> str:
        return deployment.code_version[:12]

    @admin.action(description="Pause the selected deployments")
    def pause(self, request: HttpRequest, queryset) -> None:
        count = queryset.update(is_paused=True)
        self.message_user(request, f"Paused {count} deployment(s).", messages.SUCCESS)

    @admin.action(description="Resume the selected deployments")
    def resume(self, request: HttpRequest, queryset) -> None:
        count = queryset.update(is_paused=False)
        self.message_user(request, f"Resumed {count} deployment(s).", messages.SUCCESS)
