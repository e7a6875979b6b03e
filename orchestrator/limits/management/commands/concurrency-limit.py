"""Registers the `concurrency-limit` command; the code is in orchestrator/limits/management/concurrency_limit.py
(commands/flow-run.py says why a hyphenated command is a re-export)."""
from orchestrator.limits.management.concurrency_limit import Command

__all__ = ["Command"]
