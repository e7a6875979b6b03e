"""Rules are checked when they are saved: states, targets for their channel, webhook hosts, templates."""
from __future__ import annotations

import uuid

import pytest

from orchestrator.deployments.services import deployment_create
from orchestrator.exceptions import InvalidInput
from orchestrator.notifications import services
from orchestrator.notifications.models import NotificationRule


def _webhook(make_rule, url: str, **fields):
    return make_rule(channel="webhook", target=url, **fields)


def test_state_names_are_read_in_any_case_and_kept_in_their_own_spelling(make_rule):
    rule = make_rule(channel="webhook", target="https://hooks.example.test/hook", states=["failed", "CRASHED", "late", "Failed"])
    assert rule.states == ["Failed", "Crashed", "Late"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"states": ["Broken"]}, "unknown state 'Broken' for a notification rule; use any of: Scheduled, Pending"),
    ({"states": []}, "needs at least one state to watch"),
    ({"channel": "pager"}, "unknown channel 'pager'; use one of: webhook, slack, email, callable"),
    ({"target": "hooks.example.com/x"}, "webhook URL 'hooks.example.com/x' must start with https:// or http://"),
    ({"target": "https:///path"}, "has no host"),
    ({"target": "https://host:99999/"}, "is malformed: Port out of range"),
    ({"target": ""}, "a webhook rule needs a target, e.g. https://host/path"),
    ({"channel": "email", "target": "oncall@example.com, not-an-address"}, "'not-an-address' is not an email address"),
    ({"channel": "callable", "target": "alerts.notify"}, "'alerts.notify' is not an import path; write it as package.module:function"),
    ({"channel": "email", "target": "oncall@example.com", "secret": "s"}, "a secret signs webhook bodies"),
    ({"title_template": "Run {run} failed"}, "title template: unknown placeholder {run}; use any of: {flow_run_name}"),
    ({"body_template": "{flow_name} is {"}, "body template: a lone '{' at character 16; write {{ for a brace"),
    ({"name": " "}, "a notification rule needs a name of 1 to 200 characters"),
    ({"deployments": ["no-flow/none"]}, "deployment 'no-flow/none' does not exist"),
])  # fmt: skip
def test_a_bad_rule_is_refused_with_a_message_naming_what_is_wrong(make_rule, fields, message):
    name = f"bad-{uuid.uuid4().hex[:6]}"
    with pytest.raises(InvalidInput) as refused:
        make_rule(**{"name": name, "channel": "webhook", "target": "https://hooks.example.test/hook", **fields})
    assert message in str(refused.value)
    assert not NotificationRule.objects.filter(name=name).exists()


@pytest.mark.parametrize(("allowed", "target", "saved"), [
    ([], "alerts:notify", False),
    (["alerts"], "alerts:notify", True),
    (["alerts"], "alerts.pager.send:page", True),
    (["alerts"], "alertsmore:notify", False),
    (["alerts.pager:page"], "alerts.pager:page", True),
    (["alerts.pager:page"], "alerts.pager:other", False),
])  # fmt: skip
def test_a_callable_rule_names_a_function_of_an_allowed_module(make_rule, settings_override, allowed, target, saved):
    settings_override(RUNWAY_NOTIFICATION_CALLABLES=allowed)
    if saved:
        assert make_rule(channel="callable", target=target).target == target
        return
    with pytest.raises(InvalidInput) as refused:
        make_rule(channel="callable", target=target)
    shown = ", ".join(allowed) or "none: it is empty"
    assert f"{target} is not in a module RUNWAY_NOTIFICATION_CALLABLES allows ({shown}); list its module there" in str(refused.value)


@pytest.mark.parametrize(("url", "words"), [
    ("http://127.0.0.1:8000/hook", "webhook host '127.0.0.1' is 127.0.0.1, a loopback address"),
    ("http://localhost/hook", "webhook host 'localhost' resolves to 127.0.0.1, a loopback address"),
    ("http://[::1]/hook", "is ::1, a loopback address"),
    ("http://[::ffff:10.1.2.3]/hook", "a private address"),
    ("http://10.0.0.7/hook", "a private address"),
    ("http://192.168.1.20/hook", "a private address"),
    ("http://169.254.169.254/latest/meta-data/", "a link-local (cloud metadata) address"),
    ("http://100.100.100.200/", "non-public"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://metadata.google.internal/computeMetadata/v1/", "is a cloud metadata service"),
])  # fmt: skip
def test_webhooks_to_internal_addresses_are_refused_unless_their_host_is_allowed(make_rule, settings_override, url, words):
    with pytest.raises(InvalidInput) as refused:
        _webhook(make_rule, url)
    assert words in str(refused.value)
    assert "RUNWAY_NOTIFICATION_ALLOWED_HOSTS" in str(refused.value) or "metadata" in words


def test_the_allow_list_opens_names_wildcards_addresses_and_networks(make_rule, settings_override):
    settings_override(RUNWAY_NOTIFICATION_ALLOWED_HOSTS=["localhost", "*.corp.test", "127.0.0.1", "10.0.0.0/8", "::1"])
    for url in ("http://localhost:9/", "http://hooks.corp.test/x", "http://127.0.0.1:5000/", "http://10.9.8.7/",
                "http://[::1]:8080/"):  # fmt: skip
        assert _webhook(make_rule, url).target == url
    with pytest.raises(InvalidInput, match="192.168.0.1, a private address"):
        _webhook(make_rule, "http://192.168.0.1/")


def test_with_public_hosts_closed_only_listed_hosts_are_reached(make_rule, settings_override):
    settings_override(RUNWAY_NOTIFICATION_ALLOWED_HOSTS=["hooks.example.com"], RUNWAY_NOTIFICATION_ALLOW_PUBLIC_HOSTS=False)
    assert _webhook(make_rule, "https://hooks.example.com/services/T/B/x").channel == "webhook"
    with pytest.raises(InvalidInput, match="'203.0.113.9' is not on RUNWAY_NOTIFICATION_ALLOWED_HOSTS"):
        _webhook(make_rule, "https://203.0.113.9/hook")
    with pytest.raises(InvalidInput, match="'other.example.com' is not on RUNWAY_NOTIFICATION_ALLOWED_HOSTS"):
        _webhook(make_rule, "https://other.example.com/hook")


def test_a_public_name_that_does_not_resolve_now_is_accepted_and_checked_again_when_sending(make_rule):
    rule = _webhook(make_rule, "https://hooks.slack.com/services/T000/B000/XXXX", secret="s3")
    assert rule.target == "https://hooks.slack.com/services/T000/B000/XXXX" and rule.secret == "s3"


def test_names_are_unique_and_an_update_is_checked_as_a_whole(make_rule):
    rule = make_rule(channel="email", target=" a@example.com ,b@example.com")
    assert rule.target == "a@example.com, b@example.com"
    with pytest.raises(InvalidInput, match=f"a notification rule named '{rule.name}' exists"):
        make_rule(name=rule.name, channel="email", target="c@example.com")
    with pytest.raises(InvalidInput, match="'http://x' is not an email address"):
        services.notification_rule_update(ref=rule.name, target="http://x")
    with pytest.raises(InvalidInput, match="notification rules have no field\\(s\\) colour"):
        services.notification_rule_update(ref=rule.pk, colour="red")
    changed = services.notification_rule_update(ref=rule.pk, channel="webhook", target="https://hooks.example.test/h", tags=["etl"])
    assert (changed.channel, changed.target, changed.tags, changed.states) == ("webhook", "https://hooks.example.test/h", ["etl"], ["Failed"])


def test_deployments_are_named_as_flow_slash_name_and_kept_as_ids(make_rule):
    deployment, _ = deployment_create(flow_name=f"nd-{uuid.uuid4().hex[:6]}", name="nightly", entrypoint="f.py:f",
                                      code_path="/code", code_version="c" * 64)  # fmt: skip
    rule = make_rule(channel="webhook", target="https://hooks.example.test/", deployments=[str(deployment), str(deployment.pk)])
    deployment_id = str(deployment.pk)
    assert rule.deployment_ids == [deployment_id]
    deployment.delete()  # a deleted deployment's id stays (it matches nothing) and other changes still save
    assert services.notification_rule_update(ref=rule.pk, enabled=False).deployment_ids == [deployment_id]


def test_unknown_rules_are_named_with_the_fix():
    with pytest.raises(Exception, match="no notification rule 'nope-x'; list them with `python manage.py notification ls`"):
        services.notification_rule_get(ref="nope-x")
