"""The UI's pages at scale (issue 6, point 2): 100,000 flow runs and 1,000,000 task runs in PostgreSQL.

    python bench/ui_pages.py [--database-url postgresql://postgres@127.0.0.1:5432/runway_ui_bench]
                             [--flow-runs 100000] [--task-runs-per-flow-run 10] [--repeat 7] [--recreate]

The database is made and filled once (about 2 minutes, with SQL's generate_series:
60 flows, 12 deployments on 4 work queues, flow runs spread over the last 30 days
in every state with tags, 10 task runs each with states, and 20 log lines for every
100th run), then kept for the next run unless --recreate. Each page is rendered
through Django's whole request path (middleware, session, login check, view,
template) by its test client in this process, `--repeat` times after one warm-up;
the median and the slowest are printed, in milliseconds, against the 300 ms target.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path[:0] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]

TARGET_MS = 300.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/runway_ui_bench")
    parser.add_argument("--flow-runs", type=int, default=100_000)
    parser.add_argument("--task-runs-per-flow-run", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--recreate", action="store_true", help="drop the database and fill it again")
    args = parser.parse_args()
    _database(args.database_url, args.recreate)
    os.environ["RUNWAY_DATABASE_URL"] = args.database_url
    os.environ.setdefault("RUNWAY_HOME", os.path.join("/tmp", "runway-ui-bench-home"))
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _fill(args.flow_runs, args.task_runs_per_flow_run)
    return _measure(args.repeat)


def _database(url: str, recreate: bool) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        if recreate:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


FILL_SQL = """
INSERT INTO runs_flow (id, name, created)
SELECT gen_random_uuid(), 'bench-flow-' || lpad(i::text, 2, '0'), now() FROM generate_series(1, 60) i;

CREATE TEMP TABLE bench_flows AS SELECT row_number() OVER (ORDER BY name) AS n, id FROM runs_flow;

INSERT INTO runs_flowrun (id, name, tags, empirical_policy, state_type, state_name, state_timestamp, run_count,
    start_time, end_time, total_run_time, expected_start_time, hostname, worker, created, flow_id, parameters,
    work_queue_name, code_version, deployment_id)
SELECT gen_random_uuid(), 'run-' || i, to_jsonb(ARRAY['team-' || (i %% 7), 'env-' || (i %% 3)]), '{}',
    s.type, s.name, t + interval '30 seconds', 1, t, CASE WHEN s.final THEN t + interval '30 seconds' END, 30, t,
    'bench-host', '', t, f.id, jsonb_build_object('n', i), '', '', NULL
FROM generate_series(1, %(flow_runs)s) i
CROSS JOIN LATERAL (SELECT now() - (i * (2592000.0 / %(flow_runs)s)) * interval '1 second' AS t) tt
JOIN bench_flows f ON f.n = 1 + (i %% 60)
CROSS JOIN LATERAL (
    SELECT * FROM (VALUES
        (0, 'COMPLETED', 'Completed', true), (1, 'COMPLETED', 'Completed', true), (2, 'COMPLETED', 'Completed', true),
        (3, 'COMPLETED', 'Completed', true), (4, 'FAILED', 'Failed', true), (5, 'CRASHED', 'Crashed', true),
        (6, 'RUNNING', 'Running', false), (7, 'SCHEDULED', 'Late', false), (8, 'CANCELLED', 'Cancelled', true),
        (9, 'COMPLETED', 'Cached', true)
    ) v(k, type, name, final) WHERE v.k = i %% 10
) s;

INSERT INTO runs_flowrunstate (id, type, name, message, timestamp, details, flow_run_id)
SELECT gen_random_uuid(), state_type, state_name, '', state_timestamp, '{}', id FROM runs_flowrun;
UPDATE runs_flowrun r SET state_id = s.id FROM runs_flowrunstate s WHERE s.flow_run_id = r.id;

INSERT INTO runs_taskrun (id, name, tags, empirical_policy, state_type, state_name, state_timestamp, run_count,
    start_time, end_time, total_run_time, expected_start_time, hostname, worker, created, flow_run_id, task_key,
    dynamic_key, task_inputs, flow_run_run_count)
SELECT gen_random_uuid(), 'task-' || j || '-' || j, r.tags, '{}', r.state_type, r.state_name, r.state_timestamp, 1,
    r.start_time + j * interval '2 seconds', r.start_time + j * interval '2 seconds' + interval '1 second', 1,
    r.expected_start_time + j * interval '2 seconds', 'bench-host', '', r.created, r.id, 'bench.task' || j, j::text,
    '{}', 1
FROM runs_flowrun r CROSS JOIN generate_series(1, %(per_run)s) j;

INSERT INTO runs_log (flow_run_id, task_run_id, level, name, message, timestamp)
SELECT r.id, NULL, CASE WHEN k %% 5 = 0 THEN 30 ELSE 20 END, 'runway.flow_runs', 'line ' || k || ' of ' || r.name,
    r.start_time + k * interval '1 second'
FROM (SELECT * FROM runs_flowrun ORDER BY expected_start_time DESC) r CROSS JOIN generate_series(1, 20) k
WHERE right(r.name, 2) = '00';
ANALYZE;
"""


def _fill(flow_runs: int, per_run: int) -> None:
    from django.db import connection

    from orchestrator.runs.models import FlowRun

    if FlowRun.objects.exists():
        print(f"database already filled: {FlowRun.objects.count():,} flow runs (--recreate to fill it again)")
        return
    started = time.perf_counter()
    print(f"filling: {flow_runs:,} flow runs, {flow_runs * per_run:,} task runs ...", flush=True)
    with connection.cursor() as cursor:
        for statement in FILL_SQL.split(";\n"):
            if statement.strip():
                cursor.execute(statement % {"flow_runs": flow_runs, "per_run": per_run})
    _deployments()
    print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)


def _deployments() -> None:
    """12 deployments of the first flows on 4 queues, each owning a slice of the runs."""
    from orchestrator.deployments.models import Deployment, WorkQueue
    from orchestrator.runs.models import Flow, FlowRun

    queues = [WorkQueue.objects.create(name=f"bench-queue-{i}") for i in range(4)]
    for i, flow in enumerate(Flow.objects.order_by("name")[:12]):
        deployment = Deployment.objects.create(
            flow=flow, name="nightly", entrypoint="flows.py:f", code_path="/nonexistent", code_version="0" * 64,
            parameter_schema={"properties": {"n": {"type": "integer"}}}, work_queue=queues[i % 4],
        )  # fmt: skip
        FlowRun.objects.filter(flow=flow).update(deployment=deployment, work_queue_name=queues[i % 4].name)


def _measure(repeat: int) -> int:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from orchestrator.deployments.models import Deployment
    from orchestrator.runs.models import FlowRun, TaskRun

    user, _ = get_user_model().objects.get_or_create(username="bench")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    run = FlowRun.objects.filter(name__endswith="00").order_by("-expected_start_time").first()
    task = TaskRun.objects.filter(flow_run=run).first()
    deployment = Deployment.objects.order_by("flow__name").first()
    deep = _cursor_after(client, "/flow-runs/", 40)
    pages = [
        ("dashboard, last 24 hours", "/"), ("dashboard, last 7 days", "/?range=7d"),
        ("dashboard, last 30 days", "/?range=30d"), ("flows", "/flows/"),
        ("flow runs", "/flow-runs/"), ("flow runs, 41st page", f"/flow-runs/?after={deep}"),
        ("flow runs, state Failed", "/flow-runs/?state=FAILED"),
        ("flow runs, one flow", "/flow-runs/?flow=bench-flow-07"),
        ("flow runs, one deployment", f"/flow-runs/?deployment={deployment.pk}"),
        ("flow runs, tag team-3", "/flow-runs/?tag=team-3"),
        ("flow runs, flow + state + tag + 7 days", "/flow-runs/?flow=bench-flow-07&state=FAILED&tag=env-1&range=7d"),
        ("flow runs, a day two weeks ago", _custom_day()),
        ("flow runs, one flow, 2 states, 24 h", "/flow-runs/?flow=bench-flow-03&state=COMPLETED&state=CRASHED&range=24h"),
        ("task runs", "/task-runs/"), ("task runs, state Crashed", "/task-runs/?state=CRASHED"),
        ("task runs, one flow", "/task-runs/?flow=bench-flow-07"),
        ("task runs, tag team-3", "/task-runs/?tag=team-3"),
        ("flow runs, a tag no run has", "/flow-runs/?tag=no-such-tag"),
        ("task runs, a tag no run has", "/task-runs/?tag=no-such-tag"),
        ("task runs, one flow, state Failed", "/task-runs/?flow=bench-flow-07&state=FAILED"),
        ("task runs, a flow with no runs", "/task-runs/?flow=bench-flow-empty"),
        ("flow run (10 task runs, 20 log lines)", f"/runs/{run.pk}/"), ("task run", f"/task-runs/{task.pk}/"),
        ("flow", "/flows/bench-flow-07/"), ("deployments", "/deployments/"),
        ("deployment", f"/deployments/{deployment.pk}/"), ("work queues", "/work-queues/"),
        ("work queue", "/work-queues/bench-queue-0/"),
    ]  # fmt: skip
    print(f"\n{FlowRun.objects.count():,} flow runs, {TaskRun.objects.count():,} task runs; "
          f"each page {repeat} times after a warm-up (ms)\n")  # fmt: skip
    print(f"{'page':45} {'median':>8} {'slowest':>8}")
    worst = 0.0
    for label, url in pages:
        times = _time_page(client, url, repeat)
        worst = max(worst, max(times))
        print(f"{label:45} {statistics.median(times):8.1f} {max(times):8.1f}", flush=True)
    verdict = "PASS" if worst < TARGET_MS else "FAIL"
    print(f"\n{verdict}: slowest page render {worst:.1f} ms (target < {TARGET_MS:.0f} ms)")
    return 0 if verdict == "PASS" else 1


def _time_page(client, url: str, repeat: int) -> list[float]:
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}: {response.content[:500]!r}")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _cursor_after(client, url: str, pages: int) -> str:
    """The cursor of the `pages`-th page, found by following "Older" links as a user would."""
    import re

    cursor = ""
    for _ in range(pages):
        html = client.get(f"{url}?after={cursor}" if cursor else url).content.decode()
        cursor = re.search(r'after=([A-Za-z0-9_-]+)" rel="next"', html).group(1)
    return cursor


def _custom_day() -> str:
    from datetime import timedelta

    from django.utils import timezone

    day = (timezone.now() - timedelta(days=14)).replace(hour=0, minute=0, second=0, microsecond=0)
    return f"/flow-runs/?range=custom&since={day:%Y-%m-%dT%H:%M}&until={day + timedelta(days=1):%Y-%m-%dT%H:%M}"


if __name__ == "__main__":
    sys.exit(main())
