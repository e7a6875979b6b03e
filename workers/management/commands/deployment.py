"""`python manage.py deployment <verb>`: deploy a flow, list, inspect, run, pause, resume and delete deployments.

`create` loads the flow's code (to check the default parameters against its signature
and copy the code into storage), so this command lives with the workers, which may use
the SDK; the other verbs only read and change what the orchestrator stores.
"""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from orchestrator.cli import NounCommand, add_json_flag, non_negative_float, positive_int, show_value
from orchestrator.deployments import selectors, services
from orchestrator.runs.management.render import format_time
from orchestrator.runs.management.watch import watch_flow_run


class Command(NounCommand):
    help = "Work with deployments: a flow's stored code, default parameters, tags and work queue."

    def add_create_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("entrypoint", help="path/to/file.py:flow_function or package.module:flow_function")
        parser.add_argument("-n", "--name", required=True, help="the deployment's name, e.g. nightly or prod")
        parser.add_argument("--param", action="append", default=[], dest="params", metavar="KEY=VALUE",
                            help="a default parameter; VALUE is read as JSON if it is JSON, else as text (repeat)")  # fmt: skip
        parser.add_argument("--params", default=None, dest="params_json", metavar="JSON",
                            help="default parameters as one JSON object")
        parser.add_argument("-t", "--tag", action="append", default=[], dest="tags", help="a tag (repeat for several)")
        parser.add_argument("-q", "--work-queue", default=None, dest="work_queue",
                            help="the work queue whose agents run it (default: 'default', made if missing)")  # fmt: skip
        parser.add_argument("--description", default=None)
        parser.add_argument("--version", default=None, dest="flow_version", help="a version label of your own")
        parser.add_argument("--paused", action="store_true", help="deploy it paused")
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--cron", help="a schedule: five cron fields, e.g. '0 9 * * *' (in --timezone)")
        when.add_argument("--interval", type=float, metavar="SECONDS", help="a schedule: every SECONDS from --anchor-date")
        when.add_argument("--rrule", help="a schedule: an RFC 5545 rule, e.g. 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9'")
        parser.add_argument("--timezone", help="the schedule's time zone, e.g. Europe/Paris (default UTC)")
        parser.add_argument("--anchor-date", dest="anchor_date", help="ISO 8601 start of an --interval schedule")
        parser.add_argument("--storage", default=None, help="where to copy the code (default: RUNWAY_DEPLOYMENT_STORAGE)")

    def handle_create(self, *, entrypoint: str, name: str, params: list[str], tags: list[str], work_queue: str | None,
                      description: str | None, flow_version: str | None, paused: bool, storage: str | None,
                      cron: str | None, interval: float | None, rrule: str | None, timezone: str | None,
                      anchor_date: str | None, **options: Any) -> None:  # fmt: skip
        """Deploy a flow: check its default parameters against its signature, copy its code into
        storage (later edits to the source change nothing until it is deployed again), and
        register it. Deploying the same flow and name again replaces that deployment.

          python manage.py deployment create flows/etl.py:pipeline --name nightly --tag ETL --param msg=Hello \\
              --cron "0 9 * * *" --timezone Europe/Paris
        """
        from sdk.deployments import DeploymentError, deploy
        from sdk.exceptions import ParameterBindError, ParameterTypeError

        parameters = _parameters(options.get("params_json"), params)
        try:
            deployed = deploy(entrypoint, name=name, parameters=parameters, tags=tags, description=description,
                              version=flow_version, work_queue_name=work_queue, paused=paused, storage=storage,
                              cron=cron, interval=interval, rrule=rrule, timezone=timezone, anchor_date=anchor_date)  # fmt: skip
        except (DeploymentError, ParameterBindError, ParameterTypeError) as exc:
            raise CommandError(str(exc)) from None
        verb = "Deployed" if deployed.created else "Deployed again"
        queue = work_queue or "default"
        self.stdout.write(f"{verb} {deployed.name!r} (code version {deployed.code_version[:12]}, work queue {queue!r}).")
        self.stdout.write(f"Its code is stored in {deployed.code_path}.")
        for schedule in selectors.deployment_detail(ref=str(deployed.id), upcoming=1)["schedules"]:
            first = format_time(schedule["next"][0]) if schedule["next"] else "none"
            self.stdout.write(f"Schedule: {schedule['description']}; next time {first} (UTC).")

    def add_ls_arguments(self, parser: CommandParser) -> None:
        add_json_flag(parser)

    def handle_ls(self, *, as_json: bool, **_: Any) -> None:
        """List deployments by flow and name."""
        rows = [selectors.deployment_summary(d) for d in selectors.deployment_list()]
        if as_json:
            return self.write_json(rows)
        if not rows:
            return self.stdout.write("No deployments; create one with "
                                     "`python manage.py deployment create path/file.py:flow --name NAME`.")  # fmt: skip
        self.write_table(
            ("NAME", "WORK QUEUE", "TAGS", "PAUSED", "CODE", "UPDATED"),
            [(r["name"], r["work_queue"], ",".join(r["tags"]), "yes" if r["is_paused"] else "no",
              r["code_version"][:12], format_time(r["updated"])) for r in rows],
        )  # fmt: skip

    def add_inspect_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("deployment", metavar="FLOW/NAME", help="the deployment, as flow/name, or its id")
        add_json_flag(parser)

    def handle_inspect(self, *, deployment: str, as_json: bool, **_: Any) -> None:
        """Show a deployment: its code, defaults, parameter schema, tags and queue."""
        detail = selectors.deployment_detail(ref=deployment)
        if as_json:
            return self.write_json(detail)
        for label, key in (("Name", "name"), ("ID", "id"), ("Entrypoint", "entrypoint"), ("Deployed from", "source"),
                           ("Code", "code_path"), ("Code version", "code_version"), ("Work queue", "work_queue"),
                           ("Tags", "tags"), ("Paused", "is_paused"), ("Version", "version"),
                           ("Description", "description")):  # fmt: skip
            self.stdout.write(f"{label + ':':<15}{show_value(detail[key])}")
        self.stdout.write(f"{'Parameters:':<15}{json.dumps(detail['parameters'])}")
        required = detail["parameter_schema"].get("required", [])
        takes = [f"{n}{'' if n in required else '?'}" for n in detail["parameter_schema"].get("properties", {})]
        self.stdout.write(f"{'Flow takes:':<15}{', '.join(takes) or 'no parameters'}  (? has a default)")
        for schedule in detail["schedules"]:
            upcoming = ", ".join(format_time(t) for t in schedule["next"]) or "none"
            paused = "" if schedule["active"] else " (paused)"
            self.stdout.write(f"{'Schedule ' + str(schedule['id']) + ':':<15}{schedule['description']}{paused}; next: {upcoming}")

    def add_run_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("deployment", metavar="FLOW/NAME", help="the deployment, as flow/name, or its id")
        parser.add_argument("--param", action="append", default=[], dest="params", metavar="KEY=VALUE",
                            help="a parameter over the deployment's default; VALUE is read as JSON if it is JSON (repeat)")  # fmt: skip
        parser.add_argument("--params", default=None, dest="params_json", metavar="JSON",
                            help="parameters as one JSON object")
        parser.add_argument("--start-in", type=non_negative_float, default=0.0, dest="start_in", metavar="SECONDS",
                            help="schedule the run this many seconds from now (default: now)")  # fmt: skip
        parser.add_argument("--watch", action="store_true",
                            help="stream the run's states and logs until it ends; exit 1 unless it Completed")  # fmt: skip
        parser.add_argument("--timeout", type=non_negative_float, default=None, metavar="SECONDS",
                            help="with --watch: stop watching after SECONDS (exit 2 if the run has not ended)")  # fmt: skip

    def handle_run(self, *, deployment: str, params: list[str], start_in: float, watch: bool,
                   timeout: float | None, **options: Any) -> None:  # fmt: skip
        """Run a deployment now (or in --start-in seconds) with its default parameters, or with some
        given: an agent serving its work queue picks the run up.

          python manage.py deployment run pipeline/nightly --param msg=now --watch
        """
        if timeout is not None and not watch:
            raise CommandError("--timeout goes with --watch (how long to watch the run)")
        parameters = _parameters(options.get("params_json"), params)
        when = timezone.now() + timedelta(seconds=start_in) if start_in else None
        run = services.deployment_run_create(ref=deployment, parameters=parameters, scheduled_time=when)
        self.stdout.write(f"Created flow run {run.name!r} ({run.id}) of deployment {deployment!r}, "
                          f"on work queue {run.work_queue_name!r}.")  # fmt: skip
        if not watch:
            return self.stdout.write(f"Follow it with `python manage.py flow-run inspect {run.id}`.")
        final = watch_flow_run(run.id, write=self.stdout.write, timeout=timeout)
        if final is None:
            raise CommandError(f"the run had not ended after {timeout:g} s; it goes on", returncode=2)
        if final != "COMPLETED":
            raise CommandError(f"flow run {run.name!r} ended {final.title()}")

    def add_pause_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("deployment", metavar="FLOW/NAME")

    def handle_pause(self, *, deployment: str, **_: Any) -> None:
        """Pause a deployment: it gets no new scheduled runs until resumed."""
        found = services.deployment_set_paused(ref=deployment, paused=True)
        self.stdout.write(f"Paused deployment {str(found)!r}.")

    def add_resume_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("deployment", metavar="FLOW/NAME")

    def handle_resume(self, *, deployment: str, **_: Any) -> None:
        """Resume a paused deployment."""
        found = services.deployment_set_paused(ref=deployment, paused=False)
        self.stdout.write(f"Resumed deployment {str(found)!r}.")

    def add_pause_schedule_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("deployment", metavar="FLOW/NAME")
        parser.add_argument("--schedule", type=positive_int, default=None, metavar="ID",
                            help="only this schedule (its id is in `deployment inspect`); default: all of them")  # fmt: skip

    def handle_pause_schedule(self, *, deployment: str, schedule: int | None, **_: Any) -> None:
        """Pause a deployment's schedule (or all of them): it makes no new runs, and its upcoming
        runs that have not started are removed. The deployment can still be run on demand."""
        found = services.deployment_schedule_set_active(ref=deployment, schedule_id=schedule, active=False)
        which = f"schedule {schedule}" if schedule else "the schedules"
        self.stdout.write(f"Paused {which} of deployment {str(found)!r}.")

    def add_resume_schedule_arguments(self, parser: CommandParser) -> None:
        self.add_pause_schedule_arguments(parser)

    def handle_resume_schedule(self, *, deployment: str, schedule: int | None, **_: Any) -> None:
        """Resume a deployment's paused schedule (or all of them); its upcoming runs are made at once."""
        found = services.deployment_schedule_set_active(ref=deployment, schedule_id=schedule, active=True)
        which = f"schedule {schedule}" if schedule else "the schedules"
        self.stdout.write(f"Resumed {which} of deployment {str(found)!r}.")

    def add_delete_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("deployment", metavar="FLOW/NAME")

    def handle_delete(self, *, deployment: str, **_: Any) -> None:
        """Delete a deployment; its past runs stay."""
        services.deployment_delete(ref=deployment)
        self.stdout.write(f"Deleted deployment {deployment!r}.")


def _parameters(as_json: str | None, pairs: list[str]) -> dict[str, Any]:
    """--params '{"a": 1}' and --param a=1 (JSON if it parses, else text), the latter winning."""
    parameters: dict[str, Any] = {}
    if as_json:
        try:
            parameters = json.loads(as_json)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--params is not JSON: {exc}") from None
        if not isinstance(parameters, dict):
            raise CommandError("--params must be a JSON object, e.g. '{\"msg\": \"Hello\"}'")
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--param {pair!r} must look like KEY=VALUE, e.g. --param msg=Hello")
        try:
            parameters[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            parameters[key.strip()] = text
    return parameters
