"""Throughput on Celery: N no-op task runs through CeleryTaskRunner vs N plain `.delay()` tasks (issue 4, point 7).

    python bench/celery_throughput.py [--n 10000] [--workers 1] [--concurrency 2] [--repeat 1]
                                      [--order plain,runway] [--profile] [--keep] [--broker URL]
                                      [--database-url postgresql://postgres@127.0.0.1:5432/runway_bench]

Set-up, made by the script and removed afterwards: a fresh RUNWAY_HOME (SQLite, or
with --database-url a PostgreSQL database made afresh; its server's CPU is not counted),
a queue of its own (RUNWAY_DEFAULT_QUEUE=runway-bench-<random>) on Redis
(RUNWAY_BROKER_URL, default redis://127.0.0.1:6379/0), and `--workers` processes
`celery -A workers worker -c <concurrency> -l info` consuming only that queue
(their logs in the home). Both sides use the same broker, queue and workers:

- plain Celery: a child process sends N `runway.ping` tasks (the app's own no-op,
  answering "pong") with `.delay()`, then waits until the workers have logged N
  "Task runway.ping[...] succeeded" lines. The app stores no results (no result
  backend, task_ignore_result), so completion is read where the workers report it:
  each pool process logs that line after the task returned and before the message
  is acknowledged (acks late). Counting lines is exact, needs nothing from the
  broker, and costs both sides the same (each run_task_run logs the same line).
  Timed from the first `.delay()` to the poll (every 5 ms) that sees the N-th line.
- Runway: a child process calls a flow with `task_runner=CeleryTaskRunner()` doing
  `noop.map(range(n))` and summing every future's result. Timed from the flow call
  to its return: creating the flow run and the N task runs (Pending), sending them,
  the workers orchestrating each (Running, the call, the result persisted,
  Completed, log lines), the watcher seeing every run final and the values read
  back from result storage.

Before timing, an untimed warm-up (pings, and a small Runway flow with a few task
runs per pool process) lets every pool process import the engine, set Django up and
open its database connection, so the figures are steady-state. After each Runway run
the parent counts the rows in the SQLite file: the timed flow run Completed, N task
runs Completed each with exactly Pending, Running, Completed, and the whole
database's totals (bench/_common.py's db_counts); any mismatch prints FAIL and the
script exits 1. So does any worker log line at ERROR or CRITICAL.

`--profile` attaches `py-spy record --threads -f raw` to the flow's process and
`py-spy record -f raw` to every worker's main and pool processes during the (last) Runway run,
and prints where the samples fall, by thread and by category, and the hottest
functions; the raw files stay in the home with `--keep`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]

from _common import PYTHON, REPO_DIR, CountQuery, check_counts, child_env, db_counts, fresh_home, fresh_postgres, print_table  # noqa: E402
from sdk import flow, task  # noqa: E402  (a worker imports this file by path to find `noop`; no side effects)
from sdk.task_runners import CeleryTaskRunner  # noqa: E402

PY_SPY = str(Path(PYTHON).with_name("py-spy"))
PING_DONE = "Task runway.ping["  # ... succeeded in 0.0003s: 'pong'


@task
def noop(i):
    return i


_FLOW_RUN_IDS: list[str] = []  # the flow's process records its run's id here, for the checks


@flow(task_runner=CeleryTaskRunner())
def celery_noops(n: int) -> int:
    from sdk.context import FlowRunContext

    _FLOW_RUN_IDS.append(str(FlowRunContext.get().flow_run.id))
    return sum(future.result() for future in noop.map(range(n)))


# --- the children ------------------------------------------------------------------------------
def count_lines(paths: list[Path], offsets: list[int], needle: str, tail: str) -> tuple[int, list[int]]:
    """Whole lines containing `needle` and `tail` appended to `paths` since `offsets`, and the new offsets."""
    found, new_offsets = 0, []
    for path, offset in zip(paths, offsets):
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # count whole lines only; the rest is read again next time
        for line in data[:end].decode(errors="replace").splitlines():
            if needle in line and tail in line:
                found += 1
        new_offsets.append(offset + end)
    return found, new_offsets


def child_plain(n: int, logs: list[Path], timeout: float) -> dict:
    """Send n pings with .delay(), wait until the workers logged n of them succeeded."""
    from workers.tasks import ping

    ping.app.connection_for_write().ensure_connection()  # connect before timing, as the flow's client is started
    offsets = [p.stat().st_size for p in logs]
    done = 0
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        ping.delay()
    sent = time.perf_counter() - t0
    deadline = time.monotonic() + timeout
    while done < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"FAIL: only {done} of {n} pings done after {timeout} s")
        time.sleep(0.005)
        found, offsets = count_lines(logs, offsets, PING_DONE, "succeeded")
        done += found
    wall = time.perf_counter() - t0
    return {"wall": wall, "sent": sent, "done": done, "cpu": time.process_time() - c0}


def child_runway(n: int) -> dict:
    """Call the flow once (the client started first, untimed); the flow run's id for the checks."""
    import coolname  # noqa: F401  (lazy imports of a first flow call, kept out of the timing)
    import pydantic  # noqa: F401

    from sdk.client import get_client

    get_client()
    c0, t0 = time.process_time(), time.perf_counter()
    state = celery_noops(n, return_state=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    got = state.result()
    if got != n * (n - 1) // 2:
        raise SystemExit(f"FAIL: flow returned {got}, expected {n * (n - 1) // 2}")
    return {"wall": wall, "cpu": cpu, "flow_run_id": _FLOW_RUN_IDS[-1]}


# --- the parent --------------------------------------------------------------------------------
class Worker:
    """One `celery -A workers worker` on the bench queue; its log in the home."""

    def __init__(self, index: int, home: Path, env: dict, queue: str, concurrency: int, extra: list[str] = ()) -> None:
        self.name = f"bench{index}-{queue[-6:]}"
        self.log_path = home / f"worker-{index}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        command = [PYTHON, "-m", "celery", "-A", "workers", "worker", "-Q", queue, "-c", str(concurrency),
                   "-n", f"{self.name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
                   "-l", "info", *extra]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=REPO_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"FAIL: worker exited with {self.process.returncode}:\n{self.output()[-3000:]}")
            if " ready." in self.output():
                return
            time.sleep(0.1)
        raise SystemExit(f"FAIL: worker not ready within {timeout} s:\n{self.output()[-3000:]}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pool_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def spawn_child(args: list[str], env: dict, home: Path, label: str) -> subprocess.Popen:
    err = open(home / f"{label}.stderr", "wb")  # noqa: SIM115 (inherited by the child; closed with the parent)
    return subprocess.Popen([PYTHON, __file__, *args], cwd=REPO_DIR, env=env, stdout=subprocess.PIPE, stderr=err)


def finish_child(proc: subprocess.Popen, home: Path, label: str, timeout: float) -> dict:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise SystemExit(f"FAIL: {label} child did not finish within {timeout} s (stderr in {home / (label + '.stderr')})")
    if proc.returncode != 0:
        tail = (home / f"{label}.stderr").read_text(errors="replace")[-3000:]
        raise SystemExit(f"FAIL: {label} child exited with {proc.returncode}\n{out.decode()[-2000:]}\n{tail}")
    return json.loads(out.decode().strip().splitlines()[-1])


def check_flow_run(home: Path, flow_run_id: str, n: int, url: str | None) -> list[str]:
    """The timed flow run: Completed, n task runs Completed, each with exactly Pending, Running, Completed."""
    q = CountQuery(home, url)
    try:
        fid = q.run_id(flow_run_id)
        got = {
            "flow run state": q("SELECT state_type FROM runs_flowrun WHERE id = ?", fid),
            "task runs": q("SELECT COUNT(*) FROM runs_taskrun WHERE flow_run_id = ?", fid),
            "task runs Completed": q("SELECT COUNT(*) FROM runs_taskrun WHERE flow_run_id = ? AND state_type = 'COMPLETED'", fid),
            "task runs with Pending, Running, Completed": q(q.state_sequence("t.flow_run_id = ?"), fid),
        }  # fmt: skip
    finally:
        q.close()
    want = {"flow run state": "COMPLETED", "task runs": n, "task runs Completed": n,
            "task runs with Pending, Running, Completed": n}  # fmt: skip
    return [f"timed flow run, {k}: expected {v}, found {got[k]}" for k, v in want.items() if got[k] != v]


def worker_errors(workers: list[Worker]) -> list[str]:
    bad = []
    for w in workers:
        bad += [line for line in w.output().splitlines() if re.search(r"\b(ERROR|CRITICAL)/", line)]
    return bad


def proc_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by `pids`, from /proc (0 for a pid that is gone)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def redis_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def calibration() -> str:
    out = subprocess.run([PYTHON, "-m", "timeit", "sum(range(50))"], capture_output=True, text=True).stdout.strip()
    return out.split(":", 1)[-1].strip() if out else "?"


# --- profiling -------------------------------------------------------------------------------
CATEGORIES = [  # (label, substring of a frame); the first match from the innermost frame outwards wins
    ("SQLite execute / commit", "sqlite3"),
    ("psycopg (PostgreSQL)", "psycopg"),
    ("Django DB layer", "django/db/"),
    ("orchestration services + rules", "orchestrator/"),
    ("kombu / redis (broker)", "kombu/"),
    ("kombu / redis (broker)", "redis/"),
    ("celery machinery", "celery/"),
    ("billiard (pool IPC)", "billiard/"),
    ("result storage (persist / load)", "sdk/results"),
    ("SDK logging", "sdk/logging"),
    ("stdlib logging", "logging/__init__"),
    ("SDK client hand-offs", "sdk/client"),
    ("SDK engine", "sdk/engine"),
    ("SDK states / contexts / other", "sdk/"),
    ("pydantic", "pydantic"),
    ("threading / queue waits", "threading.py"),
    ("threading / queue waits", "queue.py"),
]


def categorize(stack: list[str]) -> str:
    for frame in reversed(stack):
        for label, needle in CATEGORIES:
            if needle in frame:
                return label
    return "other"


def read_raw(path: Path) -> list[tuple[list[str], int]]:
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            rows.append((stack.split(";"), int(count)))
    return rows


def report_profile(label: str, rows: list[tuple[list[str], int]], by_thread: bool, top: int = 15) -> None:
    total = sum(c for _, c in rows)
    if not total:
        print(f"  {label}: no samples")
        return
    print(f"\n  {label}: {total} samples (py-spy --gil, 100 Hz: the thread holding the GIL; SQLite's own work releases it)")
    if by_thread:
        threads = Counter()
        for stack, c in rows:
            threads[re.sub(r"\s*\(?0x[0-9a-f]+\)?|\s*\(idle\)|\s*\(active\)", "", stack[0]).strip()] += c
        print("  by thread: " + ", ".join(f"{t} {100 * c / total:.0f}%" for t, c in threads.most_common(8)))
    cats = Counter()
    leaf = Counter()
    for stack, c in rows:
        cats[categorize(stack)] += c
        leaf[stack[-1]] += c
    print_table(["category (innermost match)", "share"], [[k, f"{100 * v / total:.1f}%"] for k, v in cats.most_common()])
    print("  hottest innermost frames:")
    for frame, c in leaf.most_common(top):
        print(f"    {100 * c / total:5.1f}%  {frame[:140]}")


def inclusive(rows: list[tuple[list[str], int]], needles: list[str]) -> list[list[str]]:
    total = sum(c for _, c in rows) or 1
    out = []
    for needle in needles:
        hit = sum(c for stack, c in rows if any(needle in f for f in stack))
        out.append([needle, f"{100 * hit / total:.1f}%"])
    return out


FLOW_FUNCS = ["_dispatch (sdk/celery_runner", "apply_async (celery", "message (sdk/engine/remote",
              "task_reference (sdk/engine/remote", "_settle (sdk/celery_runner", "task_runs_create (",
              "task_run_current_states (", "_serve (sdk/client/inprocess", "create_task_runs (", "resolve (sdk/engine/inputs",
              "load_value (", "emit (", "uuid4 ("]  # fmt: skip
WORKER_FUNCS = ["trace_task (celery", "run_task_run (workers", "execute (sdk/engine/remote", "load (sdk/entrypoints",
                "propose", "task_run_set_state (", "commit (django", "get_new_connection (", "close (django",
                "persist_value (", "flush_logs (", "emit (", "close_database (celery", "claim", "heartbeat",
                "send_task_message (", "on_task_received (", "billiard/"]  # fmt: skip


# --- main ---------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (celery worker)")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--order", default="plain,runway")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--database-url", help="a PostgreSQL database named runway_bench... (made afresh, dropped after); "
                                               "default: SQLite in the fresh home")
    parser.add_argument("--profile", action="store_true", help="py-spy the flow process and the workers (last Runway run)")
    parser.add_argument("--keep", action="store_true", help="keep the home (logs, database, profiles)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--child", choices=["plain", "runway"])
    parser.add_argument("--logs", default="")
    args = parser.parse_args()

    if args.child == "plain":
        print(json.dumps(child_plain(args.n, [Path(p) for p in args.logs.split(",")], args.timeout)))
        return 0
    if args.child == "runway":
        print(json.dumps(child_runway(args.n)))
        return 0

    n, order = args.n, [x.strip() for x in args.order.split(",") if x.strip()]
    print(f"calibration: python -m timeit \"sum(range(50))\": {calibration()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    failures: list[str] = []
    results: dict[str, list[float]] = {"plain": [], "runway": []}
    cpu: dict[str, list[list[float]]] = {"plain": [], "runway": []}

    def cpu_row(got: dict, mains: list[int], pools: list[int], cpu0: tuple[float, float, float], n: int) -> list[float]:
        """ms of CPU per task: sender/flow process, workers' main processes, pool processes, redis-server."""
        return [1e3 * got["cpu"] / n, 1e3 * (proc_cpu(mains) - cpu0[0]) / n, 1e3 * (proc_cpu(pools) - cpu0[1]) / n,
                1e3 * (proc_cpu(redis_pids()) - cpu0[2]) / n]  # fmt: skip
    database = fresh_postgres(args.database_url) if args.database_url else contextlib.nullcontext()
    with fresh_home(prefix="runway-celery-bench-", keep=args.keep) as home, database:
        queue = f"runway-bench-{uuid.uuid4().hex[:8]}"
        on_postgres = {"RUNWAY_DATABASE_URL": args.database_url} if args.database_url else {}
        env = child_env(home, RUNWAY_BROKER_URL=args.broker, RUNWAY_DEFAULT_QUEUE=queue, **on_postgres)
        print(f"home {home}, database {args.database_url or 'SQLite in the home'}, queue {queue}, broker {args.broker}, "
              f"{args.workers} worker(s) x concurrency {args.concurrency} (prefork)")  # fmt: skip
        subprocess.run([PYTHON, str(REPO_DIR / "manage.py"), "migrate", "-v", "0"], env=env, cwd=REPO_DIR, check=True)
        workers = [Worker(i, home, env, queue, args.concurrency) for i in range(args.workers)]  # after: they query at start
        try:
            for w in workers:
                w.wait_ready()
            logs = ",".join(str(w.log_path) for w in workers)
            slots = args.workers * args.concurrency
            # warm-up, untimed: migrate the database, start each pool process's client
            finish_child(spawn_child(["--child", "plain", "--n", str(20 * slots), "--logs", logs], env, home, "warm-plain"),
                         home, "warm-plain", args.timeout)  # fmt: skip
            finish_child(spawn_child(["--child", "runway", "--n", str(10 * slots)], env, home, "warm-runway"),
                         home, "warm-runway", args.timeout)  # fmt: skip
            flow_runs, task_runs = 1, 10 * slots
            for r in range(args.repeat):
                for side in order:
                    label = f"{side}-{r}"
                    mains, pools = [w.process.pid for w in workers], [p for w in workers for p in w.pool_pids()]
                    cpu0 = (proc_cpu(mains), proc_cpu(pools), proc_cpu(redis_pids()))
                    if side == "plain":
                        proc = spawn_child(["--child", "plain", "--n", str(n), "--logs", logs], env, home, label)
                        got = finish_child(proc, home, label, args.timeout)
                        cpu[side].append(cpu_row(got, mains, pools, cpu0, n))
                        print(f"  plain Celery, run {r + 1}: {got['wall']:.2f} s ({n / got['wall']:.0f} tasks/s; "
                              f"sending took {got['sent']:.2f} s)")  # fmt: skip
                        results["plain"].append(got["wall"])
                        continue
                    proc = spawn_child(["--child", "runway", "--n", str(n)], env, home, label)
                    spies = []
                    if args.profile and r == args.repeat - 1:
                        time.sleep(1.0)  # let the child start its client; the flow call starts just after
                        spies.append(subprocess.Popen([PY_SPY, "record", "--gil", "--threads", "-r", "100", "-f", "raw", "-o",
                                                       str(home / "spy-flow.txt"), "-p", str(proc.pid)],
                                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
                        for i, w in enumerate(workers):
                            spies.append(subprocess.Popen([PY_SPY, "record", "--gil", "-r", "100", "-f", "raw", "-o",
                                                           str(home / f"spy-main-{i}.txt"), "-p", str(w.process.pid)],
                                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
                            for pid in w.pool_pids():
                                spies.append(subprocess.Popen([PY_SPY, "record", "--gil", "-r", "100", "-f", "raw", "-o",
                                                               str(home / f"spy-worker-{i}-{pid}.txt"), "-p", str(pid)],
                                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
                    got = finish_child(proc, home, label, args.timeout)
                    cpu[side].append(cpu_row(got, mains, pools, cpu0, n))
                    for spy in spies:
                        if spy.poll() is None:
                            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
                    for spy in spies:
                        try:
                            spy.wait(timeout=60)
                        except subprocess.TimeoutExpired:
                            spy.kill()
                    flow_runs, task_runs = flow_runs + 1, task_runs + n
                    time.sleep(1.0)  # the workers' log threads store their last lines (every 0.5 s)
                    problems = check_flow_run(home, got["flow_run_id"], n, args.database_url)
                    counts = db_counts(home, args.database_url)
                    problems += check_counts(counts, {
                        "flow_runs": flow_runs, "flow_runs_completed": flow_runs, "task_runs": task_runs,
                        "task_runs_completed": task_runs, "task_runs_with_3_states": task_runs,
                        "task_run_states": 3 * task_runs,
                    })  # fmt: skip
                    failures += problems
                    print(f"  Runway (CeleryTaskRunner), run {r + 1}: {got['wall']:.2f} s ({n / got['wall']:.0f} tasks/s); "
                          f"recorded: {'ok' if not problems else 'FAIL'}")  # fmt: skip
                    results["runway"].append(got["wall"])
            failures += [f"worker log: {line}" for line in worker_errors(workers)[:20]]
        finally:
            for w in workers:
                w.stop()

        print()
        rows = []
        best = {}
        for side, name in (("plain", "plain Celery .delay() of runway.ping"), ("runway", "Runway CeleryTaskRunner, noop.map")):
            if results[side]:
                best[side] = min(results[side])
                walls = ", ".join(f"{w:.2f}" for w in results[side])
                rows.append([name, f"{n:,}", f"{best[side]:.2f} s", f"{n / best[side]:.0f}", walls])
        print_table(["side", "tasks", "best wall", "tasks/s", "all walls (s)"], rows)
        print("\nCPU per task (ms), run with the best wall; 2 cores give 2 ms of CPU per ms of wall:")
        crow = []
        for side in ("plain", "runway"):
            if results[side]:
                c = cpu[side][results[side].index(best[side])]
                crow.append([side, *(f"{x:.2f}" for x in c), f"{sum(c):.2f}", f"{1e3 * best[side] / n:.2f}"])
        print_table(["side", "sender / flow process", "worker main", "pool processes", "redis-server", "total",
                     "wall per task (ms)"], crow)  # fmt: skip
        if len(best) == 2:
            ratio = (n / best["runway"]) / (n / best["plain"])
            print(f"\nratio Runway / plain Celery = {ratio:.2f} (target >= 0.5: {'met' if ratio >= 0.5 else 'not met'}); "
                  f"orchestration adds {1e3 * (best['runway'] - best['plain']) / n:.2f} ms of wall time per task run")  # fmt: skip

        if args.profile:
            print("\nWhere the Runway run's time went (last run):")
            flow_rows = read_raw(home / "spy-flow.txt")
            report_profile("flow process", flow_rows, by_thread=True)
            print_table(["flow process, frames (inclusive)", "share"], inclusive(flow_rows, FLOW_FUNCS))
            worker_rows = [row for p in sorted(home.glob("spy-worker-*.txt")) for row in read_raw(p)]
            report_profile("worker pool processes (all together)", worker_rows, by_thread=False)
            print_table(["workers, frames (inclusive)", "share"], inclusive(worker_rows, WORKER_FUNCS))
            main_rows = [row for p in sorted(home.glob("spy-main-*.txt")) for row in read_raw(p)]
            report_profile("worker main processes (all together)", main_rows, by_thread=False, top=25)

    if failures:
        print("\nFAIL:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
