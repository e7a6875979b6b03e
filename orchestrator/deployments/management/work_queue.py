"""`python manage.py work-queue <verb>`: the queues agents serve, their filters, pause switch and limit."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandParser

from orchestrator.cli import NounCommand, add_json_flag, non_negative_int, positive_int, show_value
from orchestrator.deployments import selectors, services
from orchestrator.runs.management.render import format_time


class Command(NounCommand):
    help = ("Work with work queues: each is a Celery queue that agents serve (`celery -A workers worker -Q NAME`), "
            "with filters, a pause switch and a concurrency limit.")  # fmt: skip

    def add_create_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the queue's name, also its Celery queue's")
        parser.add_argument("-t", "--tag", action="append", default=[], dest="tags",
                            help="also take runs of deployments with this tag (repeat for several: all must match)")  # fmt: skip
        parser.add_argument("-d", "--deployment", action="append", default=[], dest="deployments", metavar="FLOW/NAME",
                            help="with --tag or alone: only runs of these deployments")  # fmt: skip
        parser.add_argument("-l", "--limit", type=non_negative_int, default=None, dest="concurrency_limit",
                            help="at most this many of its flow runs running at once")  # fmt: skip
        parser.add_argument("-p", "--priority", type=positive_int, default=1, help="1 is served first (default 1)")
        parser.add_argument("--description", default="")
        parser.add_argument("--paused", action="store_true", help="create it paused")

    def handle_create(self, *, name: str, tags: list[str], deployments: list[str], concurrency_limit: int | None,
                      priority: int, description: str, paused: bool, **_: Any) -> None:  # fmt: skip
        """Create a work queue.

        Runs of deployments that name this queue go to it; with --tag (and --deployment),
        it also takes the runs of other deployments that match. Serve it with
          celery -A workers worker -Q NAME
        """
        queue = services.work_queue_create(name=name, tags=tags, deployments=deployments, description=description,
                                           concurrency_limit=concurrency_limit, priority=priority, paused=paused)  # fmt: skip
        self.stdout.write(f"Created work queue {queue.name!r}. Serve it with `celery -A workers worker -Q {queue.name}`.")

    def add_ls_arguments(self, parser: CommandParser) -> None:
        add_json_flag(parser)

    def handle_ls(self, *, as_json: bool, **_: Any) -> None:
        """List work queues by priority: filters, limit, paused flag, deployments that use each."""
        rows = [selectors.work_queue_summary(queue) for queue in selectors.work_queue_list()]
        if as_json:
            return self.write_json(rows)
        if not rows:
            return self.stdout.write("No work queues; create one with `python manage.py work-queue create NAME`.")
        self.write_table(
            ("NAME", "PRIORITY", "PAUSED", "LIMIT", "TAGS", "DEPLOYMENTS"),
            [(r["name"], r["priority"], "yes" if r["is_paused"] else "no", r["concurrency_limit"],
              ",".join(r["filter_tags"]), r["deployment_count"]) for r in rows],
        )  # fmt: skip

    def add_inspect_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        add_json_flag(parser)

    def handle_inspect(self, *, name: str, as_json: bool, **_: Any) -> None:
        """Show a work queue and the deployments whose runs it takes."""
        detail = selectors.work_queue_detail(name=name)
        if as_json:
            return self.write_json(detail)
        for label, key in (("Name", "name"), ("Priority", "priority"), ("Paused", "is_paused"),
                           ("Limit", "concurrency_limit"), ("Tags", "filter_tags"),
                           ("Only", "filter_deployments"), ("Description", "description")):  # fmt: skip
            self.stdout.write(f"{label + ':':<13}{show_value(detail[key])}")
        self.stdout.write(f"{'Updated:':<13}{format_time(detail['updated'])}")
        self.stdout.write(f"Deployments:  {', '.join(detail['deployments']) or 'none'}")

    def add_preview_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--hours", type=float, default=None, help="only runs due within this many hours")
        parser.add_argument("--limit", type=positive_int, default=20, help="at most this many runs (default 20)")
        add_json_flag(parser)

    def handle_preview(self, *, name: str, hours: float | None, limit: int, as_json: bool, **_: Any) -> None:
        """The Scheduled runs this queue will release next, soonest first; LATE marks overdue ones."""
        within = timedelta(hours=hours) if hours is not None else None
        rows = selectors.work_queue_preview(name=name, limit=limit, within=within)
        if as_json:
            return self.write_json(rows)
        if not rows:
            return self.stdout.write(f"Work queue {name!r} has no scheduled runs to release.")
        self.write_table(("SCHEDULED (UTC)", "RUN", "ID", "DEPLOYMENT", ""),
                         [(format_time(r["scheduled_time"]), r["name"], r["id"], r["deployment"],
                           "LATE" if r["late"] else "") for r in rows])  # fmt: skip

    def add_pause_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle_pause(self, *, name: str, **_: Any) -> None:
        """Pause a queue: it releases no run until resumed (runs already released go on)."""
        services.work_queue_set_paused(name=name, paused=True)
        self.stdout.write(f"Paused work queue {name!r}.")

    def add_resume_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle_resume(self, *, name: str, **_: Any) -> None:
        """Resume a paused queue."""
        services.work_queue_set_paused(name=name, paused=False)
        self.stdout.write(f"Resumed work queue {name!r}.")

    def add_set_concurrency_limit_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("limit", type=_limit_or_none, help="a whole number, or 'none' to remove the limit")

    def handle_set_concurrency_limit(self, *, name: str, limit: int | None, **_: Any) -> None:
        """At most LIMIT of the queue's flow runs running at once ('none': no limit)."""
        services.work_queue_set_concurrency_limit(name=name, limit=limit)
        self.stdout.write(f"Work queue {name!r}: " + (f"at most {limit} flow runs at once." if limit is not None else "no limit."))

    def add_delete_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle_delete(self, *, name: str, **_: Any) -> None:
        """Delete a work queue that no deployment uses."""
        services.work_queue_delete(name=name)
        self.stdout.write(f"Deleted work queue {name!r}.")



def _limit_or_none(text: str) -> int | None:
    return None if text.strip().lower() == "none" else non_negative_int(text)
