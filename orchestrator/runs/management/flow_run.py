"""`python manage.py flow-run <verb>`: list flow runs, inspect one, read its logs, cancel, resume.

The command class lives here, under an importable name; commands/flow-run.py
re-exports it so that Django, which names a command after its module file,
offers it as `flow-run` (see that module's docstring).
"""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from orchestrator.cli import NounCommand, add_json_flag, parse_log_level, parse_state_types, positive_int
from orchestrator.runs import pauses, selectors, services
from orchestrator.runs.management.render import (
    flow_run_detail,
    flow_run_summary,
    format_duration,
    format_time,
    log_line,
    state_label,
    state_summary,
    task_run_summary,
)
from orchestrator.runs.models import FlowRun
from orchestrator.schemas import StateType

DEFAULT_LIMIT = 20
RUN_HEADERS = ("ID", "NAME", "FLOW", "STATE", "START", "DURATION")


class Command(NounCommand):
    help = "Work with flow runs: list them, inspect one, read its logs, cancel one, resume a paused one."

    def add_ls_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--flow", metavar="NAME", help="only runs of the flow with this name")
        parser.add_argument(
            "--state", metavar="TYPE", dest="states", nargs="+", action="extend", default=[],
            help="only runs whose state has one of these types, in any case: "
            "--state failed crashed (or --state failed --state crashed)",
        )  # fmt: skip
        parser.add_argument(
            "--limit", metavar="N", type=positive_int, default=DEFAULT_LIMIT,
            help=f"show at most N runs (default {DEFAULT_LIMIT})",
        )  # fmt: skip
        add_json_flag(parser)

    def handle_ls(self, *, flow: str | None, states: list[str], limit: int, as_json: bool, **_: Any) -> None:
        """List flow runs, newest first.

        START is when the run started or, for a run that has not started yet,
        when it is expected to. DURATION is the time spent Running.
        """
        state_types = [t.value for t in parse_state_types(states)]
        if flow:
            selectors.flow_get(name=flow)  # a mistyped name is an error, not an empty list
        runs = list(selectors.flow_run_list(flow_name=flow, state_types=state_types)[: limit + 1])
        now = timezone.now()
        summaries = [flow_run_summary(run, now=now) for run in runs[:limit]]
        if as_json:
            return self.write_json(summaries)
        if not summaries:
            return self.stdout.write("No flow runs match.")
        self.write_table(RUN_HEADERS, [_run_row(s) for s in summaries])
        if len(runs) > limit:
            self.stdout.write(f"(showing the newest {limit}; raise --limit to see more)")

    def add_inspect_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", metavar="ID", help="the flow run's id, or a unique prefix of it")
        add_json_flag(parser)

    def handle_inspect(self, *, run_id: str, as_json: bool, **_: Any) -> None:
        """Show one flow run in detail: its fields, state history, task runs and subflow runs."""
        run = selectors.flow_run_get(flow_run_id=run_id)
        now = timezone.now()
        detail = flow_run_detail(run, now=now)
        detail["states"] = [state_summary(s) for s in selectors.flow_run_states(flow_run_id=run.id)]
        detail["task_runs"] = [task_run_summary(t, now=now) for t in selectors.task_run_list(flow_run_id=run.id)]
        subflows = selectors.flow_run_list(parent_flow_run_id=run.id).reverse()
        detail["subflow_runs"] = [flow_run_summary(s, now=now) for s in subflows]
        if as_json:
            return self.write_json(detail)
        self._write_fields(run, detail)
        self._write_history(detail["states"])
        self._write_task_runs(detail["task_runs"])
        if detail["subflow_runs"]:
            self.stdout.write(f"\nSubflow runs ({len(detail['subflow_runs'])})")
            self.write_table(RUN_HEADERS, [_run_row(s) for s in detail["subflow_runs"]], indent="  ")

    def add_logs_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", metavar="ID", help="the flow run's id, or a unique prefix of it")
        parser.add_argument(
            "--level", default="DEBUG",
            help="only lines at this level or above: DEBUG, INFO, WARNING, ERROR, CRITICAL or a number (default DEBUG)",
        )  # fmt: skip
        parser.add_argument(
            "--no-task-runs", dest="include_task_runs", action="store_false",
            help="leave out the lines its task runs logged",
        )  # fmt: skip

    def handle_logs(self, *, run_id: str, level: str, include_task_runs: bool, **_: Any) -> None:
        """Print a flow run's log lines in the order they were logged, its task runs' lines included."""
        min_level = parse_log_level(level)
        run = selectors.flow_run_get(flow_run_id=run_id)
        lines = selectors.log_list(flow_run_id=run.id, min_level=min_level, include_task_runs=include_task_runs)
        for row in lines.iterator(chunk_size=2000):
            self.stdout.write(log_line(row))

    def add_cancel_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", metavar="ID", help="the flow run's id, or a unique prefix of it")

    def handle_cancel(self, *, run_id: str, **_: Any) -> None:
        """Cancel a flow run: one not started is Cancelled at once; a running one goes Cancelling
        and the process running it stops it."""
        run = selectors.flow_run_get(flow_run_id=run_id)
        result = services.flow_run_cancel(flow_run_id=run.id, by="the command line")
        self.stdout.write(f"Flow run {run.name!r} ({run.id}) is now {result.state.name}.")
        if result.state.type == StateType.CANCELLING:
            self.stdout.write("The process running it stops it and marks it Cancelled; "
                              f"watch with `python manage.py flow-run inspect {run.id}`.")  # fmt: skip

    def add_resume_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", metavar="ID", help="the flow run's id, or a unique prefix of it")
        parser.add_argument("--input", dest="run_input", metavar="JSON",
                            help="the input the paused run waits for, as JSON (checked against its schema)")  # fmt: skip

    def handle_resume(self, *, run_id: str, run_input: str | None, **_: Any) -> None:
        """Resume a paused flow run (a suspended one is scheduled to run again)."""
        run = selectors.flow_run_get(flow_run_id=run_id)
        try:
            value = json.loads(run_input) if run_input is not None else None
        except json.JSONDecodeError as error:
            raise CommandError(f"--input is not valid JSON: {error}") from None
        result = pauses.flow_run_resume(flow_run_id=run.id, run_input=value, by="the command line")
        self.stdout.write(f"Flow run {run.name!r} ({run.id}) is now {result.state.name}.")

    def _write_fields(self, run: FlowRun, d: dict[str, Any]) -> None:
        host = f"{d['hostname']} (pid {d['pid']})" if d["hostname"] else None
        fields = [
            ("id", d["id"]), ("flow", f"{d['flow']} ({d['flow_id']})"),
            ("state", state_label(d["state_type"], d["state_name"])),
            ("parameters", json.dumps(d["parameters"], cls=DjangoJSONEncoder)),
            ("tags", ", ".join(d["tags"]) or None), ("run count", d["run_count"]), ("retries", d["retries"]),
            ("parent flow run", d["parent_flow_run_id"]), ("expected start", format_time(d["expected_start_time"])),
            ("next scheduled", format_time(d["next_scheduled_start_time"])),
            ("started", format_time(d["start_time"], millis=True)), ("ended", format_time(d["end_time"], millis=True)),
            ("duration", format_duration(d["duration"])), ("host", host), ("created", format_time(d["created"])),
        ]  # fmt: skip
        self.stdout.write(f"Flow run {run.name!r}")
        for label, value in fields:
            self.stdout.write(f"  {label:<16} {'-' if value is None else value}")

    def _write_history(self, states: list[dict[str, Any]]) -> None:
        self.stdout.write("\nState history")
        rows = [(format_time(s["timestamp"], millis=True), s["type"], s["name"], s["message"]) for s in states]
        self.write_table(("TIMESTAMP", "TYPE", "NAME", "MESSAGE"), rows, indent="  ")

    def _write_task_runs(self, task_runs: list[dict[str, Any]]) -> None:
        self.stdout.write(f"\nTask runs ({len(task_runs)})")
        if not task_runs:
            return
        rows = [
            (t["id"], t["name"], state_label(t["state_type"], t["state_name"]),
             format_time(t["start_time"], millis=True), format_duration(t["duration"]))
            for t in task_runs
        ]  # fmt: skip
        self.write_table(("ID", "NAME", "STATE", "START", "DURATION"), rows, indent="  ")


def _run_row(s: dict[str, Any]) -> tuple[object, ...]:
    start = s["start_time"] or s["expected_start_time"]
    return (s["id"], s["name"], s["flow"], s["state_name"], format_time(start), format_duration(s["duration"]))
