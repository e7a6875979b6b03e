"""docs/rules.md stays in step with the rules engine: every rule, in policy order, and every transform."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from orchestrator.rules import bookkeeping, core, policies
from orchestrator.rules.base import Rule

DOC = Path(__file__).resolve().parents[3] / "docs" / "rules.md"
POLICIES = {
    "CORE_FLOW_POLICY": policies.CORE_FLOW_POLICY,
    "CORE_TASK_POLICY": policies.CORE_TASK_POLICY,
    "MINIMAL_FLOW_POLICY": policies.MINIMAL_FLOW_POLICY,
    "MINIMAL_TASK_POLICY": policies.MINIMAL_TASK_POLICY,
}
_ROW = re.compile(r"^\|\s*\d+\s*\|\s*`?(\w+)`?\s*\|", re.MULTILINE)


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def _section(doc: str, policy_name: str) -> str:
    """The text under the heading that names `policy_name`, up to the next heading of that level or above."""
    match = re.search(rf"^(#+) .*`{policy_name}`.*$", doc, re.MULTILINE)
    assert match, f"docs/rules.md has no heading naming `{policy_name}`"
    level = len(match.group(1))
    rest = doc[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


@pytest.mark.parametrize("policy_name", ["CORE_FLOW_POLICY", "CORE_TASK_POLICY"])
def test_every_rule_of_a_core_policy_is_documented(doc, policy_name):
    missing = [rule.__name__ for rule in POLICIES[policy_name] if rule.__name__ not in doc]

    assert missing == []


@pytest.mark.parametrize("policy_name", list(POLICIES))
def test_each_policy_table_lists_its_rules_in_the_order_they_run(doc, policy_name):
    listed = _ROW.findall(_section(doc, policy_name))

    assert listed == [rule.__name__ for rule in POLICIES[policy_name]]


def test_every_rule_class_in_core_is_documented(doc):
    rules = [obj.__name__ for obj in vars(core).values() if inspect.isclass(obj) and issubclass(obj, Rule)]
    rules.remove("Rule")

    assert rules and [name for name in rules if name not in doc] == []


def test_every_bookkeeping_transform_is_documented(doc):
    transforms = {t.__name__ for t in [*bookkeeping.FLOW_TRANSFORMS, *bookkeeping.TASK_TRANSFORMS]}

    assert sorted(name for name in transforms if f"`{name}`" not in doc) == []
