"""Schemathesis against the live server: generated requests, alone and chained along the schema's
OpenAPI links (orchestrator/api/schema.py), never get a 5xx, and the answers match the schema.

Run as its command line (the pytest plugin does not follow pytest 9), with a token of a user who may
deploy, over a database holding one deployment of real stored code (so that the links from the
deployment list reach its runs). Checked: no server error, documented status codes, content types,
headers and bodies, refused unsupported methods, ignored authentication, and along links that a
deleted resource is gone. Not checked: whether schema-valid filter values are accepted and
schema-violating ones refused, since filters are deliberately lenient (any case, comma-separated lists).
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import httpx

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,unsupported_method,ignored_auth,use_after_free")  # fmt: skip
# Bounded so that a run takes about two minutes on two cores. First the examples, coverage and fuzzing
# phases, 8 examples per operation; then the stateful phase for STATEFUL_SECONDS (schemathesis repeats
# its linked scenarios, of up to 15 well-formed calls, until then), along the schema's own links only
# (its inferred links would dilute them). Deployments posted by the fuzzer name real stored code (else
# every one is refused and nothing links from it).
STATEFUL_SECONDS = 40
CONFIG = """
[generation]
max-examples = 8

[phases.stateful]
max-steps = 15

[phases.stateful.generation]
mode = "positive"

[phases.stateful.inference]
algorithms = []

[[operations]]
include-operation-id = "deployments_create"

[operations.parameters]
"body.code_path" = "{code_path}"
"body.entrypoint" = "flows.py:f"
"body.parameters" = {{}}
"body.parameter_schema" = {{}}
"body.schedules" = []
"body.empirical_policy" = {{}}
"body.work_queue_name" = "default"
"""
# Chains the stateful phase must have followed to an answer below 400: flow -> its runs -> their
# states, deployment -> its runs.
FOLLOWED = ["CreateFlowRun -> POST /api/flow_runs/", "States -> GET /api/flow_runs/{id}/states/",
            "RunDeployment -> POST /api/deployments/{id}/runs/"]


def test_generated_and_linked_requests_get_no_server_error_and_conform_to_the_schema(live_server, deployer_token,
                                                                                     stored_flow, tmp_path):  # fmt: skip
    from orchestrator.deployments.services import deployment_create

    code_path = stored_flow()
    deployment_create(flow_name=f"fuzzed-{uuid.uuid4().hex[:6]}", name="d", entrypoint="flows.py:f",
                      code_path=str(code_path), code_version="f" * 64)  # fmt: skip
    schema = httpx.get(f"{live_server}/api/schema/", headers={"Authorization": f"Bearer {deployer_token}",
                                                              "Accept": "application/json"}).json()  # fmt: skip
    links = [name for item in schema["paths"].values() for op in item.values()
             for answer in op["responses"].values() for name in answer.get("links", {})]  # fmt: skip
    assert len(links) >= 40  # flow -> runs -> states, deployment -> runs, queues, limits, rules
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(code_path=code_path))

    _schemathesis(config, live_server, deployer_token, tmp_path / "phases", "--phases", "examples,coverage,fuzzing")
    _schemathesis(config, live_server, deployer_token, tmp_path / "stateful", "--phases", "stateful",
                  "--max-time", str(STATEFUL_SECONDS))  # fmt: skip

    statuses, followed = _requests(*tmp_path.glob("*/*.ndjson"))
    print(f"schemathesis: {sum(statuses.values())} requests over {_operations(schema)} operations, statuses "
          f"{dict(sorted(statuses.items()))}; {len(followed)} of {len(links)} links followed, "
          f"{sum(followed.values())} times: {dict(followed)}")  # fmt: skip
    assert not [status for status in statuses if status >= 500]
    assert not [name for name in FOLLOWED if not followed[name]], f"links never followed: {dict(followed)}"
    assert statuses[201] > 0 and statuses[200] > 0  # the generated requests reach real objects, not only 4xx


def _schemathesis(config: Path, live_server: str, token: str, reports: Path, *options: str) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run", f"{live_server}/api/schema/",
        "--header", f"Authorization: Bearer {token}", "--checks", CHECKS, "--seed", "7", "--request-timeout", "30",
        "--no-color", "--workers", "1", "--generation-database", "none", "--report", "ndjson", "--report-dir", str(reports),
        *options,
    ]  # fmt: skip
    # One worker: schemathesis's workers share one interpreter, whose ast.parse (Python 3.11) fails under threads.
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]


def _operations(schema: dict) -> int:
    return sum(1 for item in schema["paths"].values() for method in item if method in ("get", "post", "put", "patch", "delete"))


def _requests(*reports: Path) -> tuple[Counter, Counter]:
    """The status codes of every request the run made, and how often the stateful phase followed each
    link ("name -> target operation") to an answer below 400."""
    statuses: Counter = Counter()
    followed: Counter = Counter()
    for line in (line for report in reports for line in report.read_text().splitlines()):
        scenario = json.loads(line).get("ScenarioFinished")
        if not scenario:
            continue
        recorder = scenario.get("recorder") or {}
        interactions = recorder.get("interactions", {})
        for interaction in interactions.values():
            if interaction.get("response"):
                statuses[interaction["response"]["status_code"]] += 1
        for case_id, case in recorder.get("cases", {}).items():
            response = (interactions.get(case_id) or {}).get("response")
            if case.get("transition") and response and response["status_code"] < 400:
                _, link, target = case["transition"]["id"].split(" -> ")
                followed[f"{link.split('] ')[1]} -> {target}"] += 1
    return statuses, followed
