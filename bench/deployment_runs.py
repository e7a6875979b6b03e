"""Deployment runs on agents (issue 5, point 8): quick-run latency and throughput through 2 agents.

    python bench/deployment_runs.py [--latency-runs 20] [--n 1000] [--agents 2] [--concurrency 2]
                                    [--broker redis://127.0.0.1:6379/0] [--keep]
                                    [--database-url postgresql://postgres@127.0.0.1:5432/runway_bench]

Set-up, made by the script and removed afterwards: a fresh RUNWAY_HOME (SQLite, or with
--database-url a PostgreSQL database made afresh), a work queue of its own on the broker,
a deployment (`manage.py deployment create`) of a flow whose first line writes the time
to a file named for its run and which then calls one task, and `--agents` processes
`celery -A workers worker -Q <queue> -c <concurrency>` (their logs in the home).

- Latency: with the agents idle, `--latency-runs` quick runs one after another. Each is
  timed from just before the request (`deployment_run_create`, what `deployment run`,
  the API and the admin call) to the time the flow's first line wrote; the run is awaited
  to its end before the next request. This covers the agent noticing the due run (it
  looks every RUNWAY_RELEASE_SECONDS), the release, the message, the claim, and the start
  of the child process that loads the stored code and the engine. Each request waits a
  random 0-1 s first: agents look for due runs every second, and requests made right
  after the previous run ended would all fall just after a look, measuring the worst
  case of the wait instead of its spread.
- Throughput: `--n` quick runs created at once (an agent process that finishes a run
  releases the next at once, without waiting for the next look), timed from the first request to the
  poll (every 50 ms) that finds every run final. Afterwards every run must be Completed,
  with its first line written exactly once; otherwise the script prints FAIL and exits 1.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]

from _common import PYTHON, REPO_DIR, fresh_home, fresh_postgres, print_table  # noqa: E402

FLOW = '''
import os
import time

from sdk import flow, get_run_context, task


@task
def one(x: int) -> int:
    return x + 1


@flow
def bench_pipeline(out: str) -> int:
    stamp = time.time()
    with open(os.path.join(out, f"{get_run_context().flow_run.id}.first"), "a") as f:
        f.write(f"{stamp!r}\\n")
    return one(1)
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--broker", default=os.environ.get("RUNWAY_BROKER_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        home = stack.enter_context(fresh_home("runway-bench-deploy-", keep=args.keep))
        url = stack.enter_context(fresh_postgres(args.database_url)) if args.database_url else None
        _environment(home, url, args.broker)
        return _bench(home, args, stack)


def _environment(home: Path, url: str | None, broker: str) -> None:
    """This process and every one it starts share the home, database and broker."""
    for key in [k for k in os.environ if k.startswith("RUNWAY_")]:
        del os.environ[key]
    os.environ.update(RUNWAY_HOME=str(home), RUNWAY_BROKER_URL=broker,
                      RUNWAY_DEFAULT_QUEUE=f"runway-bench-{uuid.uuid4().hex[:8]}")  # fmt: skip
    if url:
        os.environ["RUNWAY_DATABASE_URL"] = url
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), os.environ.get("PYTHONPATH", "")]))


def _bench(home: Path, args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    out = home / "first-lines"
    out.mkdir()
    (home / "flows").mkdir()
    (home / "flows" / "pipeline.py").write_text(FLOW)
    _manage("migrate", "-v0")
    _manage("work-queue", "create", queue)
    _manage("deployment", "create", f"{home / 'flows' / 'pipeline.py'}:bench_pipeline", "--name", "bench",
            "--param", f"out={out}", "-q", queue)  # fmt: skip
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    django.setup()
    agents = [_start_agent(home, queue, i, args.concurrency) for i in range(args.agents)]
    for agent in agents:
        stack.callback(_stop, agent)
    _wait_ready(home, args.agents)

    samples = [_one_quick_run(out) for _ in range(args.latency_runs)]
    latencies, to_release, to_first_line = (list(column) for column in zip(*samples))
    elapsed, created = _throughput(args.n)
    failures = _check(out, created)
    database = "PostgreSQL" if os.environ.get("RUNWAY_DATABASE_URL") else "SQLite"
    print(f"\nDeployment runs on {args.agents} agent(s) x {args.concurrency} processes, {database}, broker {args.broker}")
    print_table(["measure", "value"], [
        ["quick run -> first line (median)", f"{statistics.median(latencies) * 1000:.0f} ms"],
        ["quick run -> first line (min / max)", f"{min(latencies) * 1000:.0f} / {max(latencies) * 1000:.0f} ms"],
        ["  of which request -> released (median)", f"{statistics.median(to_release) * 1000:.0f} ms"],
        ["  of which released -> first line (median)", f"{statistics.median(to_first_line) * 1000:.0f} ms"],
        [f"{args.n} runs: wall time", f"{elapsed:.1f} s"],
        [f"{args.n} runs: throughput", f"{args.n / elapsed:.2f} runs/s"],
    ])  # fmt: skip
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


def _manage(*argv: str) -> None:
    subprocess.run([PYTHON, "manage.py", *argv], cwd=REPO_DIR, check=True, stdout=subprocess.DEVNULL)


def _start_agent(home: Path, queue: str, index: int, concurrency: int) -> subprocess.Popen:
    log = open(home / f"agent-{index}.log", "wb")  # noqa: SIM115 (the process holds it)
    command = [PYTHON, "-m", "celery", "-A", "workers", "worker", "-Q", queue, "-c", str(concurrency),
               "-n", f"agent{index}@%h", "--without-gossip", "--without-mingle", "-l", "info"]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_ready(home: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(" ready." in p.read_text(errors="replace") for p in sorted(home.glob("agent-*.log"))[:count]):
            return
        time.sleep(0.1)
    raise SystemExit("the agents did not start within 60 s; see agent-*.log in the home (--keep)")


def _stop(agent: subprocess.Popen) -> None:
    agent.terminate()
    try:
        agent.wait(timeout=30)
    except subprocess.TimeoutExpired:
        agent.kill()


def _one_quick_run(out: Path) -> tuple[float, float, float]:
    """Seconds from the request to the first line, and its two parts: to the release (Pending),
    and from the release to the first line (message, claim, process start, engine)."""
    from orchestrator.deployments.services import deployment_run_create
    from orchestrator.runs.models import FlowRun

    time.sleep(random.uniform(0, 1))  # a moment unrelated to the agents' ticks (see the docstring)
    started = time.time()
    run = deployment_run_create(ref="bench-pipeline/bench")
    first = out / f"{run.id}.first"
    _wait_final([run.id], timeout=120)
    line = float(first.read_text().split()[0])
    released = FlowRun.objects.get(pk=run.id).states.get(type="PENDING").timestamp.timestamp()
    return line - started, released - started, line - released


def _throughput(n: int) -> tuple[float, list]:
    from orchestrator.deployments.services import deployment_run_create

    started = time.monotonic()
    created = [deployment_run_create(ref="bench-pipeline/bench").id for _ in range(n)]
    _wait_final(created, timeout=3600)
    return time.monotonic() - started, created


def _wait_final(ids: list, timeout: float) -> None:
    from orchestrator.runs.models import FlowRun

    deadline = time.monotonic() + timeout
    while FlowRun.objects.filter(pk__in=ids, state_type__in=("COMPLETED", "FAILED", "CRASHED", "CANCELLED")).count() < len(ids):
        if time.monotonic() > deadline:
            raise SystemExit(f"runs not final after {timeout:.0f} s")
        time.sleep(0.05)


def _check(out: Path, ids: list) -> list[str]:
    from orchestrator.runs.models import FlowRun

    problems = []
    not_completed = FlowRun.objects.filter(pk__in=ids).exclude(state_type="COMPLETED").count()
    if not_completed:
        problems.append(f"{not_completed} run(s) did not complete")
    lines = [len((out / f"{run_id}.first").read_text().splitlines()) if (out / f"{run_id}.first").exists() else 0 for run_id in ids]
    if any(count != 1 for count in lines):
        problems.append(f"first lines written: {sum(c == 0 for c in lines)} run(s) none, {sum(c > 1 for c in lines)} more than once")
    return problems


if __name__ == "__main__":
    sys.exit(main())
