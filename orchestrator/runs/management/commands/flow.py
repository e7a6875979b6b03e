"""`python manage.py flow <verb>`: the flows the orchestrator knows, by name."""
from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from orchestrator.cli import NounCommand, add_json_flag
from orchestrator.runs import selectors
from orchestrator.runs.management.render import flow_summary, format_time, state_label


class Command(NounCommand):
    help = "Work with flows: the decorated functions whose calls become flow runs."

    def add_ls_arguments(self, parser: CommandParser) -> None:
        add_json_flag(parser)

    def handle_ls(self, *, as_json: bool, **_: Any) -> None:
        """List flows by name, with how many runs each has and how its newest run went."""
        flows = [flow_summary(flow) for flow in selectors.flow_list_with_run_summary()]
        if as_json:
            return self.write_json(flows)
        if not flows:
            return self.stdout.write("No flows yet; they appear once a @flow function runs.")
        rows = [
            (f["name"], f["id"], f["run_count"], format_time(f["last_run_time"]),
             state_label(f["last_run_state_type"], f["last_run_state_name"]))
            for f in flows
        ]  # fmt: skip
        self.write_table(("NAME", "ID", "RUNS", "LAST RUN", "LAST STATE"), rows)
