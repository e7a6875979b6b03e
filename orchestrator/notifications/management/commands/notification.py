"""`python manage.py notification <verb>`: rules that send a message when flow runs enter some states."""
from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError, CommandParser

from orchestrator.cli import NounCommand, add_json_flag, non_negative_float, positive_int, show_value
from orchestrator.notifications import selectors, services
from orchestrator.notifications.models import Channel, DeliveryStatus
from orchestrator.notifications.vocabulary import PLACEHOLDERS, STATE_CHOICES
from orchestrator.runs.management.render import format_time

_EPILOG = "placeholders for --title and --body: " + ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)


class Command(NounCommand):
    help = ("Work with notification rules: when a flow run of some flows, tags or deployments enters one of some "
            "states, send a message through a webhook, Slack, email or a Python callable (docs/notifications.md).")  # fmt: skip

    def add_create_arguments(self, parser: CommandParser) -> None:
        parser.epilog = _EPILOG
        parser.add_argument("name", help="the rule's name (unique)")
        parser.add_argument("-c", "--channel", required=True, choices=Channel.values, help="how to send")
        parser.add_argument("-t", "--target", required=True,
                            help="webhook/slack: the URL; email: comma-separated addresses; callable: module:function")  # fmt: skip
        parser.add_argument("-s", "--state", action="append", required=True, dest="states", metavar="STATE",
                            help=f"a state to watch (repeat, or comma-separate): {', '.join(STATE_CHOICES)}")  # fmt: skip
        parser.add_argument("-f", "--flow", action="append", default=[], dest="flow_names", metavar="FLOW",
                            help="only runs of this flow (repeat for several; default: every flow)")  # fmt: skip
        parser.add_argument("--tag", action="append", default=[], dest="tags",
                            help="only runs with this tag (repeat: runs with any of them)")  # fmt: skip
        parser.add_argument("-d", "--deployment", action="append", default=[], dest="deployments", metavar="FLOW/NAME",
                            help="only runs of this deployment (name or id; repeat for several)")  # fmt: skip
        parser.add_argument("--secret", default="", help="webhooks: sign bodies with HMAC-SHA256 (X-Runway-Signature)")
        parser.add_argument("--title", default="", dest="title_template", help="the title (email subject) template")
        parser.add_argument("--body", default="", dest="body_template", help="the body template")
        parser.add_argument("--disabled", action="store_true", help="create it disabled")

    def handle_create(self, *, name: str, channel: str, target: str, states: list[str], flow_names: list[str],
                      tags: list[str], deployments: list[str], secret: str, title_template: str,
                      body_template: str, disabled: bool, **_: Any) -> None:  # fmt: skip
        """Create a rule.

        A state type (Failed) fires on every state of that type (TimedOut is a Failed state);
        a named state (Late) only on that name. Filters left out match every run.
        Webhook hosts that are or resolve to internal addresses are refused unless they are
        on RUNWAY_NOTIFICATION_ALLOWED_HOSTS. Check it with `notification test NAME`.
        """
        rule = services.notification_rule_create(
            name=name, channel=channel, target=target, states=[s for text in states for s in text.split(",")],
            flow_names=flow_names, tags=tags, deployments=deployments, secret=secret, title_template=title_template,
            body_template=body_template, enabled=not disabled,
        )  # fmt: skip
        self.stdout.write(f"Created notification rule {rule.name!r} (id {rule.pk}): {rule.channel} on "
                          f"{', '.join(rule.states)}. Try it with `python manage.py notification test {rule.pk}`.")  # fmt: skip

    def add_ls_arguments(self, parser: CommandParser) -> None:
        add_json_flag(parser)

    def handle_ls(self, *, as_json: bool, **_: Any) -> None:
        """List rules by name, with how many of their messages were sent and how many failed."""
        rows = [selectors.rule_summary(rule) for rule in selectors.rule_list()]
        if as_json:
            return self.write_json(rows)
        if not rows:
            return self.stdout.write("No notification rules; create one with `python manage.py notification create "
                                     "NAME --channel webhook --target URL --state Failed`.")  # fmt: skip
        self.write_table(("ID", "NAME", "ENABLED", "CHANNEL", "TARGET", "STATES", "RUNS OF", "SENT", "FAILED"),
                         [(r["id"], r["name"], show_value(r["enabled"]), r["channel"], r["target"],
                           ",".join(r["states"]), _filters(r), r["sent_count"], r["failed_count"]) for r in rows])  # fmt: skip

    def add_inspect_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("rule", help="the rule's name or id")
        parser.add_argument("-n", "--deliveries", type=positive_int, default=10, help="latest deliveries shown (10)")
        add_json_flag(parser)

    def handle_inspect(self, *, rule: str, deliveries: int, as_json: bool, **_: Any) -> None:
        """Show a rule and its latest deliveries: sent, failed (and why), or pending."""
        detail = selectors.rule_detail(ref=rule, deliveries=deliveries)
        if as_json:
            return self.write_json(detail)
        for label, key in (("Name", "name"), ("Id", "id"), ("Enabled", "enabled"), ("Channel", "channel"),
                           ("Target", "target"), ("Signed", "has_secret"), ("States", "states"), ("Flows", "flow_names"),
                           ("Tags", "tags"), ("Deployments", "deployment_ids"), ("Title", "title_template"),
                           ("Body", "body_template")):  # fmt: skip
            self.stdout.write(f"{label + ':':<13}{show_value(detail[key])}")
        self.stdout.write(f"{'Updated:':<13}{format_time(detail['updated'])}")
        if not detail["deliveries"]:
            return self.stdout.write("Deliveries:  none yet")
        self.stdout.write("Deliveries:")
        self.write_table(("CREATED", "FLOW RUN", "STATE", "STATUS", "ATTEMPTS", "OUTCOME"),
                         [(format_time(d["created"]), d["flow_run_name"] or "(test)", d["state_name"], d["status"],
                           d["attempts"], d["last_error"] if d["status"] != "sent" else d["response"])
                          for d in detail["deliveries"]], indent="  ")  # fmt: skip

    def add_test_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("rule", help="the rule's name or id")
        parser.add_argument("--inline", action="store_true", help="send from this process instead of a worker")
        parser.add_argument("--wait", type=non_negative_float, default=30.0, help="seconds to wait for a worker (30)")

    def handle_test(self, *, rule: str, inline: bool, wait: float, **_: Any) -> None:
        """Send a test message (a made-up failed run) through the rule, and say how it went.

        A worker sends it, as it sends real ones (`celery -A workers worker` must be running),
        unless --inline. Exits non-zero if it failed or no worker sent it within --wait seconds.
        """
        delivery = services.notification_rule_test(ref=rule, inline=inline)
        deadline = time.monotonic() + wait
        while delivery.status == DeliveryStatus.SENDING or (delivery.status == DeliveryStatus.PENDING and not delivery.attempts):
            if time.monotonic() >= deadline:
                raise CommandError(f"no worker sent the test message within {wait:g} s; is one running "
                                   "(`celery -A workers worker`)? Or try again with --inline")  # fmt: skip
            time.sleep(0.2)
            delivery.refresh_from_db()
        if delivery.status == DeliveryStatus.SENT:
            return self.stdout.write(f"Sent a test message through {delivery.rule.name!r}: {delivery.response}.")
        later = "; a worker tries again later (`notification inspect` shows how it went)" * (delivery.status == DeliveryStatus.PENDING)
        raise CommandError(f"the test message through {delivery.rule.name!r} was not sent: {delivery.last_error}{later}")

    def add_enable_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("rule", help="the rule's name or id")

    def handle_enable(self, *, rule: str, **_: Any) -> None:
        """Enable a rule: state changes from now on are notified."""
        found = services.notification_rule_set_enabled(ref=rule, enabled=True)
        self.stdout.write(f"Enabled notification rule {found.name!r}.")

    def add_disable_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("rule", help="the rule's name or id")

    def handle_disable(self, *, rule: str, **_: Any) -> None:
        """Disable a rule: nothing more is sent for it, not even its pending retries."""
        found = services.notification_rule_set_enabled(ref=rule, enabled=False)
        self.stdout.write(f"Disabled notification rule {found.name!r}.")

    def add_delete_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("rule", help="the rule's name or id")

    def handle_delete(self, *, rule: str, **_: Any) -> None:
        """Delete a rule and the record of its deliveries."""
        found = services.notification_rule_get(ref=rule)
        services.notification_rule_delete(ref=found.pk)
        self.stdout.write(f"Deleted notification rule {found.name!r}.")


def _filters(row: dict[str, Any]) -> str:
    parts = [f"flow {','.join(row['flow_names'])}"] * bool(row["flow_names"])
    parts += [f"tag {','.join(row['tags'])}"] * bool(row["tags"])
    parts += [f"{len(row['deployment_ids'])} deployment(s)"] * bool(row["deployment_ids"])
    return "; ".join(parts) or "any"
