"""Registers the `work-queue` command; the code is in orchestrator/deployments/management/work_queue.py
(commands/flow-run.py in orchestrator/runs says why a hyphenated command is a re-export)."""
from orchestrator.deployments.management.work_queue import Command

__all__ = ["Command"]
