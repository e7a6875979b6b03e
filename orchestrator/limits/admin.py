"""Concurrency limits in the admin: set a tag's limit, see which runs hold its slots."""
from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from orchestrator.limits import selectors
from orchestrator.limits.models import ConcurrencyLimit


@admin.register(ConcurrencyLimit)
class ConcurrencyLimitAdmin(admin.ModelAdmin):
    list_display = ["tag", "concurrency_limit", "running", "updated"]
    search_fields = ["tag"]
    readonly_fields = ["slots_held", "created", "updated"]
    fields = ["tag", "concurrency_limit", "slots_held", "created", "updated"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConcurrencyLimit]:
        return selectors.limit_list()

    @admin.display(description="Running", ordering="active_count")
    def running(self, limit: ConcurrencyLimit) -> int:
        return limit.active_count

    @admin.display(description="Slots held by")
    def slots_held(self, limit: ConcurrencyLimit) -> str:
        if limit.pk is None:
            return "-"
        slots = selectors.limit_detail(tag=limit.tag)["active_slots"]
        if not slots:
            return "no task run holds a slot"
        return format_html_join(", ", "{} ({})", ((s["task_run_name"], s["task_run_id"]) for s in slots))
