"""Notifications: rules that watch flow runs' state changes, and the messages they send.

A rule names the flow runs it watches (flows, tags, deployments; empty means any),
the states it fires on (Failed, Crashed, Late, ...) and a channel (a webhook, a
Slack incoming webhook, email, or a Python callable). When the services write a
flow run state a rule wants, a delivery row is written in the same transaction
(unique per rule and state: one transition is never notified twice) and, after
the commit, its id is sent to a worker, which sends the message, retries with
backoff, and records the outcome. docs/notifications.md tells the story.

  models.py     NotificationRule, NotificationDelivery
  vocabulary.py the state names a rule may watch, and the placeholders of its templates
  targets.py    checking a rule's target; webhook hosts against the allow-list (at save and at send)
  triggers.py   the hook the run services call when they write a flow run state (cached rules)
  messages.py   what a delivery says: its templates filled in, and the JSON a webhook receives
  channels.py   sending through a webhook, Slack, email or a callable
  services.py   rules created, changed, deleted; deliveries attempted, retried, swept
  selectors.py  rules and deliveries for the CLI, API, admin and UI
  dispatch.py   the Celery messages, sent by task name (the orchestrator never imports workers)
"""
