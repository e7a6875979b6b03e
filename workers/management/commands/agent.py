"""`python manage.py agent start <work queue>...`: a `celery worker` serving work queues."""
from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from orchestrator.cli import NounCommand, positive_int
from orchestrator.deployments.models import WorkQueue


class Command(NounCommand):
    help = "Run an agent: a Celery worker that runs the deployments' flow runs of some work queues."

    def add_start_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queues", nargs="+", metavar="WORK_QUEUE", help="the work queue(s) to serve")
        parser.add_argument("-c", "--concurrency", type=positive_int, default=None,
                            help="flow runs at once (default: Celery's, the number of CPUs)")  # fmt: skip
        parser.add_argument("-n", "--name", default=None, help="the worker's name (default: agent-<queue>@<host>)")
        parser.add_argument("-l", "--loglevel", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")

    def handle_start(self, *, queues: list[str], concurrency: int | None, name: str | None, loglevel: str,
                     **_: Any) -> None:  # fmt: skip
        """Start an agent serving these work queues (highest priority first); it is exactly

          celery -A workers worker -Q <queues> -n agent-<first queue>@%h

        so any Celery worker option can be used that way instead.
        """
        known = set(WorkQueue.objects.filter(name__in=queues).values_list("name", flat=True))
        unknown = [q for q in queues if q not in known]
        if unknown:
            raise CommandError(f"no work queue named {', '.join(map(repr, unknown))}; create it with "
                               f"`python manage.py work-queue create {unknown[0]}` (see `work-queue ls`)")  # fmt: skip
        command = [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", ",".join(queues),
                   "-n", name or f"agent-{queues[0]}@%h", "-l", loglevel]  # fmt: skip
        if concurrency:
            command += ["-c", str(concurrency)]
        self.stdout.write(f"Starting agent for work queue(s) {', '.join(queues)}: {' '.join(command[1:])}")
        self.stdout.flush()
        os.execv(sys.executable, command)
