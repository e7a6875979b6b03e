"""Engine overhead: one flow running N no-op task runs, called directly or submitted.

    python bench/engine.py [--sizes 1,100,1000,10000] [--modes direct,submit] [--repeat 1]
                           [--no-tracemalloc] [--logging-level LEVEL] [--debug]

For each (mode, N) a fresh process runs, in a fresh, empty RUNWAY_HOME (a temporary
directory), one flow that either calls the task N times (`[noop(i) for i in range(n)]`)
or submits it (`noop.map(range(n))` then waits on every future) with the default
ConcurrentTaskRunner. The same process then times the plain functions called the
same way (a list comprehension of `noop.fn`, or a 16-thread ThreadPoolExecutor), and

    overhead per task run = (flow wall time - plain wall time) / N.

The flow's wall time includes its own fixed cost (flow run creation, 3 flow states,
validation of its parameter, the final log flush); `marginal` in the summary removes
it by comparing the two largest sizes. Before timing, the child starts the client
(database migrated, orchestrator thread running), imports what the first run would
import lazily (pydantic, coolname, the engine and the services) and builds the
flow's parameter validators, so the figures are steady-state costs and the N=1 row
is the fixed cost of a flow run plus one task run; bench/cold_start.py and
bench/cold_profile.py measure the first use.

Memory: `maxrss Δ` is how much the process's peak RSS grew during the flow (from the
timed run); `tracemalloc peak` is the peak of Python allocations during the flow, from
a second, separate run under tracemalloc (tracing slows everything, so it is never
the timed run). Skip it with --no-tracemalloc.

After each child exits, the parent opens the SQLite file and checks that everything
was recorded: 1 flow run with 3 states, N task runs all Completed with exactly
Pending, Running, Completed each (3N states), and every run log line the child
emitted (counted by a handler on the `runway` logger; 3N+1 by default: per task run
"Created task run" plus "Executing ... immediately" / "Submitted task run" on the flow
run, and "Finished in state" on the task run; plus the flow's own "Finished in state").
Any mismatch is printed as FAIL and the script exits 1.

Console log lines go to the child's stderr, which is sent to /dev/null (--debug keeps
it in a file). Note: RUNWAY_LOGGING_LEVEL is the level of the whole `runway` logger, so
raising it (e.g. WARNING) silences the console *and* drops those lines from the Log
table: `--logging-level WARNING` shows the check failing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    check_counts,
    db_counts,
    fmt_s,
    fresh_home,
    maxrss_kib,
    noop_workload,
    print_table,
    rss_now_kib,
    run_child,
)  # fmt: skip

POOL_THREADS = 16  # the ConcurrentTaskRunner default (RUNWAY_TASK_RUNNER_THREADS)


# --- the child: one measurement ----------------------------------------------------------
def child(n: int, mode: str, use_tracemalloc: bool) -> dict:
    import gc
    import logging
    from concurrent.futures import ThreadPoolExecutor

    import coolname  # noqa: F401  (imported lazily by the first flow run; keep it out of the timing)
    import pydantic  # noqa: F401

    from sdk.client import get_client

    emitted = {"run_lines": 0}

    class CountRunLines(logging.Handler):
        """Counts the records the orchestrator handler is meant to store (those tied to a run)."""

        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "flow_run_id", None) or getattr(record, "task_run_id", None):
                emitted["run_lines"] += 1

    logging.getLogger("runway").addHandler(CountRunLines())

    noop, direct_flow, submit_flow = noop_workload()

    def plain_direct(n: int) -> int:
        return sum([noop.fn(i) for i in range(n)])

    def plain_submit(n: int) -> int:
        with ThreadPoolExecutor(POOL_THREADS) as pool:
            futures = [pool.submit(noop.fn, i) for i in range(n)]
            return sum(f.result() for f in futures)

    the_flow, plain = (direct_flow, plain_direct) if mode == "direct" else (submit_flow, plain_submit)
    get_client()  # migrate the empty database and start the orchestrator thread, untimed
    import orchestrator.runs.services  # noqa: F401  (imported at the first call)
    import sdk.engine.calls  # noqa: F401

    try:  # build the flow's pydantic validators, cached per function (an internal detail; skipped if it moved)
        from sdk.engine.parameters import validate

        validate(the_flow.fn, {"n": n})
    except Exception:
        pass
    expected_sum = n * (n - 1) // 2
    gc.collect()

    report: dict = {"n": n, "mode": mode}
    if use_tracemalloc:
        import tracemalloc

        tracemalloc.start()
        got = the_flow(n)
        report["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        rss0, maxrss0 = rss_now_kib(), maxrss_kib()
        cpu0, t0 = time.process_time(), time.perf_counter()
        got = the_flow(n)
        t1, cpu1 = time.perf_counter(), time.process_time()
        report.update(
            wall=t1 - t0, cpu=cpu1 - cpu0, maxrss_delta_kib=maxrss_kib() - maxrss0,
            rss_before_kib=rss0, rss_after_kib=rss_now_kib(),
        )  # fmt: skip
        plains = []
        for _ in range(3):
            p0 = time.perf_counter()
            assert plain(n) == expected_sum
            plains.append(time.perf_counter() - p0)
        report["plain_wall"] = min(plains)
    if got != expected_sum:
        raise SystemExit(f"flow returned {got}, expected {expected_sum}")
    report["emitted_run_log_lines"] = emitted["run_lines"]
    return report


# --- the parent: run every measurement in its own process and home -------------------------
def expected_rows(n: int, emitted: int | None) -> dict[str, int]:
    expected = {
        "flow_runs": 1, "flow_runs_completed": 1, "flow_run_states": 3,
        "task_runs": n, "task_runs_completed": n, "task_run_states": 3 * n,
        "task_run_states_pending": n, "task_run_states_running": n, "task_run_states_completed": n,
        "task_runs_with_3_states": n, "logs": 3 * n + 1, "task_run_logs": n,
    }  # fmt: skip
    if emitted is not None and emitted != expected["logs"]:
        expected["logs (emitted by the run)"] = emitted
    return expected


def measure(n: int, mode: str, *, tracemalloc: bool, debug: bool, level: str | None) -> tuple[dict, dict, list[str]]:
    extra = {"RUNWAY_LOGGING_LEVEL": level} if level else {}
    with fresh_home(keep=debug) as home:
        stderr_to = str(home / "stderr.txt") if debug else None
        args = [__file__, "--child", "--n", str(n), "--mode", mode] + (["--tracemalloc"] if tracemalloc else [])
        report = run_child(args, home, stderr_to=stderr_to, **extra)
        counts = db_counts(home)
        if debug:
            print(f"  (kept {home})", file=sys.stderr)
    counts["logs (emitted by the run)"] = counts["logs"]
    problems = check_counts(counts, expected_rows(n, report["emitted_run_log_lines"]))
    return report, counts, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,100,1000,10000")
    parser.add_argument("--modes", default="direct,submit")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per (mode, N), each in a fresh process and home; the best is shown")
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--logging-level", help="RUNWAY_LOGGING_LEVEL for the children")
    parser.add_argument("--debug", action="store_true", help="keep the homes and the children's stderr")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(child(args.n, args.mode, args.tracemalloc)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, ConcurrentTaskRunner({POOL_THREADS} threads), SQLite"
          + (f", RUNWAY_LOGGING_LEVEL={args.logging_level}" if args.logging_level else ""))
    rows, results, failures = [], [], []
    for mode in modes:
        for n in sizes:
            runs = []
            for _ in range(args.repeat):
                report, counts, problems = measure(n, mode, tracemalloc=False, debug=args.debug, level=args.logging_level)
                runs.append((report, counts, problems))
                failures += [f"{mode} N={n}: {p}" for p in problems]
            report, counts, problems = min(runs, key=lambda r: r[0]["wall"])
            if not args.no_tracemalloc:
                traced, _, traced_problems = measure(n, mode, tracemalloc=True, debug=args.debug, level=args.logging_level)
                report["tracemalloc_peak"] = traced["tracemalloc_peak"]
                failures += [f"{mode} N={n} (tracemalloc run): {p}" for p in traced_problems]
            overhead = (report["wall"] - report["plain_wall"]) / n
            report.update(overhead_per_task=overhead, counts=counts, problems=problems)
            results.append(report)
            peak = report.get("tracemalloc_peak")
            rows.append([
                mode, n, fmt_s(report["wall"]), fmt_s(report["plain_wall"]), fmt_s(overhead),
                fmt_s(report["cpu"] / n), f"{report['maxrss_delta_kib'] / 1024:.1f} MiB",
                f"{peak / 2**20:.1f} MiB" if peak is not None else "-",
                f"{peak / n / 1024:.1f} KiB" if peak is not None else "-",
                counts["task_runs"], counts["task_run_states"], counts["logs"],
                "ok" if not problems else "FAIL",
            ])  # fmt: skip
            print(f"  done: {mode:6} N={n:<6} wall {fmt_s(report['wall'])}", file=sys.stderr, flush=True)

    print()
    print_table(
        ["mode", "N", "flow wall", "plain wall", "overhead/task", "CPU/task", "maxrss Δ",
         "tracemalloc peak", "peak/task", "task runs", "states", "log rows", "recorded"], rows,
    )  # fmt: skip
    print()
    for mode in modes:
        by_n = {r["n"]: r for r in results if r["mode"] == mode}
        big = sorted(by_n)[-2:]
        if len(big) == 2 and big[0] > 0:
            lo, hi = by_n[big[0]], by_n[big[1]]
            marginal = ((hi["wall"] - hi["plain_wall"]) - (lo["wall"] - lo["plain_wall"])) / (big[1] - big[0])
            ratio = hi["overhead_per_task"] / lo["overhead_per_task"]
            print(f"{mode}: marginal cost per task run between N={big[0]} and N={big[1]}: {fmt_s(marginal)}; "
                  f"overhead/task at N={big[1]} is {ratio:.2f}x that at N={big[0]} (1.00 = linear)")
    print("target: <= 1 ms overhead per task run, linear in N")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
    if failures:
        print("\nFAIL: not everything was recorded:")
        for line in failures:
            print("  " + line)
        sys.exit(1)
    print("all task runs, states and log lines recorded")


if __name__ == "__main__":
    main()
