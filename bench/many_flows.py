"""Many small flow runs in one process: 100 runs of a one-task flow, time per flow run.

    python bench/many_flows.py [--runs 100] [--debug]

A fresh process in a fresh, empty RUNWAY_HOME starts the client (database migrated,
untimed), then calls the one-task flow of bench/one_task_flow.py --runs times in a
loop. Each call is timed on its own (it returns after the flow's log lines are
flushed to the database, as every top-level flow call does). The first call is shown
apart: it pays the lazy imports and one-off set-up of the first run (pydantic
validators for the flow's parameters, coolname's word lists, the log worker thread).
Afterwards the database must hold every flow run with 3 states, every task run with
3 states and 4 log lines per flow run. Console lines go to /dev/null.

Target: < 20 ms per flow run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import check_counts, db_counts, fmt_s, fresh_home, run_child, summary  # noqa: E402


def child(runs: int) -> dict:
    from one_task_flow import hello_flow

    from sdk.client import get_client

    get_client()
    times = []
    t_all = time.perf_counter()
    for i in range(runs):
        t0 = time.perf_counter()
        assert hello_flow(f"run {i}") == f"hello run {i}"
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_all
    return {"times": times, "total": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--debug", action="store_true", help="keep the home and the child's stderr")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.runs)))
        return

    with fresh_home(keep=args.debug) as home:
        report = run_child([__file__, "--child", "--runs", str(args.runs)], home,
                           stderr_to=str(home / "stderr.txt") if args.debug else None)  # fmt: skip
        counts = db_counts(home)
    n = args.runs
    problems = check_counts(counts, {
        "flow_runs": n, "flow_runs_completed": n, "flow_run_states": 3 * n, "task_runs": n,
        "task_runs_completed": n, "task_run_states": 3 * n, "task_runs_with_3_states": n,
        "logs": 4 * n, "task_run_logs": n,
    })  # fmt: skip
    times = report["times"]
    rest = times[1:] or times
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, SQLite; {n} runs of a one-task flow in one process")
    print(f"  first flow run:        {fmt_s(times[0])}")
    print(f"  next {len(rest)} flow runs:   {summary(rest)}, mean {fmt_s(statistics.mean(rest))}, "
          f"p95 {fmt_s(sorted(rest)[int(0.95 * (len(rest) - 1))])}")
    print(f"  all {n}, per flow run: {fmt_s(report['total'] / n)} (total {fmt_s(report['total'])})")
    print(f"  recorded: {counts['flow_runs']} flow runs, {counts['flow_run_states']} flow run states, "
          f"{counts['task_runs']} task runs, {counts['task_run_states']} task run states, {counts['logs']} log lines")
    print("target: < 20 ms per flow run")
    if problems:
        print("FAIL: not everything was recorded: " + "; ".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
