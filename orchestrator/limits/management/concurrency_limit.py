"""`python manage.py concurrency-limit <verb>`: how many task runs with a tag may run at once."""
from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from orchestrator.cli import NounCommand, add_json_flag, non_negative_int
from orchestrator.limits import selectors, services
from orchestrator.runs.management.render import format_time


class Command(NounCommand):
    help = ("Work with tag concurrency limits: at most N task runs carrying a tag run at once, "
            "on every worker and host together; the others wait for a slot.")  # fmt: skip

    def add_create_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tag", help="the tag, as given to @task(tags=[...]) or `with tags(...)`")
        parser.add_argument("limit", type=non_negative_int, help="how many may run at once (0 runs none)")

    def handle_create(self, *, tag: str, limit: int, **_: Any) -> None:
        """Create the limit for a tag, or change it if the tag has one.

        Runs already holding slots are not stopped when a limit is lowered:
        new runs wait until fewer than the new limit are running.
        """
        row, created = services.concurrency_limit_create(tag=tag, limit=limit)
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} concurrency limit {row.concurrency_limit} for tag {row.tag!r}.")

    def add_ls_arguments(self, parser: CommandParser) -> None:
        add_json_flag(parser)

    def handle_ls(self, *, as_json: bool, **_: Any) -> None:
        """List limits by tag with how many of their slots are taken."""
        rows = [selectors.limit_summary(limit) for limit in selectors.limit_list()]
        if as_json:
            return self.write_json(rows)
        if not rows:
            return self.stdout.write("No concurrency limits; create one with "
                                     "`python manage.py concurrency-limit create TAG N`.")  # fmt: skip
        self.write_table(("TAG", "LIMIT", "RUNNING", "UPDATED"),
                         [(r["tag"], r["concurrency_limit"], r["active_count"], format_time(r["updated"])) for r in rows])  # fmt: skip

    def add_inspect_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tag", help="the limit's tag")
        add_json_flag(parser)

    def handle_inspect(self, *, tag: str, as_json: bool, **_: Any) -> None:
        """Show a limit and the task runs holding its slots."""
        detail = selectors.limit_detail(tag=tag)
        if as_json:
            return self.write_json(detail)
        self.stdout.write(f"Tag:       {detail['tag']}")
        self.stdout.write(f"Limit:     {detail['concurrency_limit']}")
        self.stdout.write(f"Running:   {detail['active_count']}")
        self.stdout.write(f"Updated:   {format_time(detail['updated'])}")
        if detail["active_slots"]:
            self.stdout.write("Slots held by:")
            self.write_table(("TASK RUN", "ID", "FLOW RUN", "SINCE"),
                             [(s["task_run_name"], s["task_run_id"], s["flow_run_id"], format_time(s["acquired"]))
                              for s in detail["active_slots"]], indent="  ")  # fmt: skip

    def add_delete_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tag", help="the limit's tag")

    def handle_delete(self, *, tag: str, **_: Any) -> None:
        """Delete a tag's limit: runs waiting for one of its slots start when they next ask."""
        services.concurrency_limit_delete(tag=tag)
        self.stdout.write(f"Deleted the concurrency limit for tag {tag!r}.")

