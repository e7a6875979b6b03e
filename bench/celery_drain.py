"""The workers' side alone: how fast one Celery worker drains a queue already full of N task runs
(or N plain pings), with no flow or sender process competing for the cores.

    python bench/celery_drain.py [--n 3000] [--concurrency 2] [--repeat 2] [--worker-args "--prefetch-multiplier 4"]

bench/celery_throughput.py times a whole flow: its process creates and sends the runs
while the workers run them, on the same two cores. This script separates the two.
Untimed, a child process creates a flow run (Running) and N task runs (Pending) of
bench/celery_throughput.py's `noop` through the in-process client, and publishes their
messages as CeleryTaskRunner does (workers.tasks.send) to a holding queue that no
worker consumes; for the plain side it publishes N `runway.ping` messages there. Then
the holding queue is renamed to the worker's queue (one Redis RENAME), and the clock
runs until every run is Completed in the database (or the worker has logged N pings
"succeeded"). Printed per drain: runs per second, CPU per run of the worker's main
process, its pool processes and redis-server, and how busy that kept the two cores.
A first small drain of each side warms the pool processes up. Needs Redis on
127.0.0.1:6379.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]

from _common import PYTHON, REPO_DIR, child_env, fresh_home  # noqa: E402
from celery_throughput import PING_DONE, Worker, count_lines, proc_cpu, redis_pids  # noqa: E402

NOOP = f"{REPO_DIR / 'bench' / 'celery_throughput.py'}:noop"


def fill(side: str, n: int, queue: str) -> None:
    """In this (child) process: publish n messages of `side` to `queue`, creating the runs first."""
    from sdk.client import get_client
    from sdk.filesystems import LocalFileSystem
    from sdk.results import persist_value
    from sdk.states import Pending, Running
    from workers.tasks import ping, send

    if side == "plain":
        for _ in range(n):
            ping.apply_async(queue=queue)
        return
    client = get_client()
    flow_run_id, _ = client.create_flow_run(flow_id=client.create_flow("drain"), name="drain", state=Running().to_schema())
    storage = LocalFileSystem(Path(os.environ["RUNWAY_HOME"]) / "storage")
    runs = [{"flow_run_id": flow_run_id, "task_key": "noop", "dynamic_key": uuid.uuid4().hex, "name": f"noop-{i}",
             "state": Pending().to_schema()} for i in range(n)]  # fmt: skip
    for start in range(0, n, 500):
        for run, (run_id, _) in zip(runs[start : start + 500], client.create_task_runs(runs[start : start + 500])):
            run["id"] = run_id
    for i, run in enumerate(runs):
        send({"task_run_id": str(run["id"]), "task": NOOP, "task_key": "noop", "name": run["name"],
              "dynamic_key": run["dynamic_key"], "tags": [], "parameters": {"i": persist_value(i, storage)},
              "flow_run": {"id": str(flow_run_id), "name": "drain"}, "log_prints": False,
              "storage": str(storage.basepath), "rate_limit": None}, queue)  # fmt: skip


def completed_runs(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT COUNT(*) FROM runs_taskrun WHERE state_type = 'COMPLETED'").fetchone()[0]


def drain(side: str, n: int, worker: Worker, env: dict, queue: str, home: Path, timeout: float) -> dict:
    """Fill the holding queue, rename it to the worker's, wait until all n are done; the figures."""
    import redis

    holding = f"{queue}-holding"
    subprocess.run([PYTHON, __file__, "--child", side, "--n", str(n), "--queue", holding], env=env, cwd=REPO_DIR,
                   check=True, stderr=subprocess.DEVNULL)  # fmt: skip
    broker = redis.Redis.from_url(env["RUNWAY_BROKER_URL"])
    if broker.llen(holding) != n:
        raise SystemExit(f"FAIL: {broker.llen(holding)} messages in the holding queue, expected {n}")
    mains, pools = [worker.process.pid], worker.pool_pids()
    cpu0 = (proc_cpu(mains), proc_cpu(pools), proc_cpu(redis_pids()))
    before, offsets, pings = completed_runs(home / "runway.sqlite3"), [worker.log_path.stat().st_size], 0
    started = time.perf_counter()
    broker.rename(holding, queue)
    while True:
        if side == "plain":
            found, offsets = count_lines([worker.log_path], offsets, PING_DONE, "succeeded")
            pings += found
            done = pings
        else:
            done = completed_runs(home / "runway.sqlite3") - before
        if done >= n:
            break
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"FAIL: {side}: {done} of {n} done after {timeout} s")
        time.sleep(0.005)
    wall = time.perf_counter() - started
    cpu = [1e3 * (after - at_start) / n for at_start, after in zip(cpu0, (proc_cpu(mains), proc_cpu(pools), proc_cpu(redis_pids())))]
    return {"rate": n / wall, "main": cpu[0], "pool": cpu[1], "redis": cpu[2], "busy": sum(cpu) * n / wall / 1e3 / os.cpu_count()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes of the one worker")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--worker-args", default="", help="more `celery worker` options, e.g. \"--prefetch-multiplier 4\"")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--child", choices=["plain", "runway"])
    parser.add_argument("--queue")
    args = parser.parse_args()
    if args.child:
        fill(args.child, args.n, args.queue)
        return 0

    with fresh_home(prefix="runway-celery-drain-") as home:
        queue = f"runway-drain-{uuid.uuid4().hex[:8]}"
        env = child_env(home, RUNWAY_BROKER_URL=args.broker, RUNWAY_DEFAULT_QUEUE=queue)
        subprocess.run([PYTHON, str(REPO_DIR / "manage.py"), "migrate", "-v", "0"], env=env, cwd=REPO_DIR, check=True)
        worker = Worker(0, home, env, queue, args.concurrency, shlex.split(args.worker_args))
        print(f"1 worker x concurrency {args.concurrency} {args.worker_args}, {os.cpu_count()} cores, "
              f"N={args.n:,}, broker {args.broker}, SQLite in {home}")  # fmt: skip
        try:
            worker.wait_ready()
            for side in ("plain", "runway"):  # warm-up
                drain(side, 20 * args.concurrency, worker, env, queue, home, args.timeout)
            for r in range(args.repeat):
                for side in ("plain", "runway"):
                    got = drain(side, args.n, worker, env, queue, home, args.timeout)
                    print(f"  {side:6}  {got['rate']:6.0f} per s   CPU ms per run: worker main {got['main']:.2f}, "
                          f"pool {got['pool']:.2f}, redis {got['redis']:.2f}; cores busy {got['busy']:.0%}", flush=True)  # fmt: skip
        finally:
            worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
