"""Applying a policy to a context: the ordered pass described in the package docstring."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from orchestrator.rules.base import OrchestrationContext, Rule

Transform = Callable[[OrchestrationContext], None]


def orchestrate(
    ctx: OrchestrationContext,
    rules: Sequence[type[Rule]],
    transforms: Sequence[Transform],
    write_state: Callable[[OrchestrationContext], None],
) -> None:
    """Run `rules` over `ctx`, then stamp and write the resulting state if there is one."""
    initial_type = ctx.initial_type
    entered: list[Rule] = []
    for rule_class in rules:
        if not rule_class.matches(initial_type, ctx.proposed.type):
            continue
        rule = rule_class()
        rule.before_transition(ctx)
        entered.append(rule)
        if ctx.settled:
            break
    if ctx.write:
        for transform in transforms:
            transform(ctx)
        write_state(ctx)
    for rule in entered:
        if ctx.write and rule.matches(initial_type, ctx.proposed.type):
            rule.after_transition(ctx)
        else:
            rule.cleanup(ctx)
