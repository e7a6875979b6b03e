"""Helpers shared by the benchmarks: fresh RUNWAY_HOMEs, child processes, counting rows in the database.

The counts are read with the stdlib `sqlite3` module straight from the file (or with
psycopg from a PostgreSQL database), after the benchmarked process has exited, so
they check what really reached the disk (nothing from the process under test is
trusted, not even its Django connection).
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PYTHON = sys.executable


@contextmanager
def fresh_home(prefix: str = "runway-bench-", keep: bool = False):
    """A new, empty RUNWAY_HOME; removed afterwards unless `keep`."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield home
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a benchmarked child: this one, with RUNWAY_HOME pointing at `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWAY_")}
    env["RUNWAY_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), os.environ.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def run_child(args: list[str], home: Path, *, stderr_to: str | None = None, timeout: float = 3600, **extra_env: str) -> dict:
    """Run `python <args>` in a fresh process; its stdout's last line is a JSON report, which is returned.

    The child's stderr (where the console log handler writes) goes to /dev/null, or to
    the file `stderr_to` so a failure can be read.
    """
    err = open(stderr_to, "wb") if stderr_to else subprocess.DEVNULL
    try:
        proc = subprocess.run(
            [PYTHON, *args], env=child_env(home, **extra_env), cwd=str(REPO_DIR),
            stdout=subprocess.PIPE, stderr=err, timeout=timeout,
        )  # fmt: skip
    finally:
        if stderr_to:
            err.close()
    if proc.returncode != 0:
        hint = f" (stderr in {stderr_to})" if stderr_to else " (rerun with --debug to keep its stderr)"
        raise SystemExit(f"FAIL: child {' '.join(args)} exited with {proc.returncode}{hint}\n{proc.stdout.decode()[-2000:]}")
    lines = proc.stdout.decode().strip().splitlines()
    return json.loads(lines[-1])


def db_path(home: Path) -> Path:
    return Path(home) / "runway.sqlite3"


@contextmanager
def fresh_postgres(url: str):
    """An empty PostgreSQL database at `url` (dropped and made again), dropped afterwards.

    Only a database whose name starts with `runway_bench` is touched, so a typo
    cannot empty a real one.
    """
    import psycopg

    base, _, name = url.rpartition("/")
    if not name.startswith("runway_bench"):
        raise SystemExit(f"--database-url must name a database called runway_bench...: got {name!r}")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class CountQuery:
    """One-value queries on the benchmark's database: SQLite in `home`, or PostgreSQL at `url`."""

    def __init__(self, home: Path, url: str | None = None) -> None:
        self.postgres = bool(url)
        if self.postgres:
            import psycopg

            self.con = psycopg.connect(url)
        else:
            self.con = sqlite3.connect(f"file:{db_path(home)}?mode=ro", uri=True)

    def __call__(self, sql: str, *params: object) -> object:
        if self.postgres:
            sql = sql.replace("?", "%s")
        return self.con.execute(sql, params).fetchone()[0]

    def run_id(self, run_id: str) -> str:
        """How the run's id is stored: 32 hex digits on SQLite, a uuid on PostgreSQL."""
        return run_id if self.postgres else run_id.replace("-", "")

    def state_sequence(self, where: str) -> str:
        """SQL counting task runs (joined as t, filtered by `where`) whose states are exactly
        Pending, Running, Completed, in that order of time."""
        if self.postgres:
            return ("SELECT COUNT(*) FROM (SELECT s.task_run_id FROM runs_taskrunstate s JOIN runs_taskrun t "
                    f"ON t.id = s.task_run_id WHERE {where} GROUP BY s.task_run_id "
                    "HAVING string_agg(s.type, ',' ORDER BY s.timestamp) = 'PENDING,RUNNING,COMPLETED') x")  # fmt: skip
        return ("SELECT COUNT(*) FROM (SELECT s.task_run_id, GROUP_CONCAT(s.type, ',') AS seq FROM "
                "(SELECT s.task_run_id, s.type FROM runs_taskrunstate s JOIN runs_taskrun t ON t.id = s.task_run_id "
                f"WHERE {where} ORDER BY s.task_run_id, s.timestamp) s "
                "GROUP BY s.task_run_id HAVING seq = 'PENDING,RUNNING,COMPLETED')")  # fmt: skip

    def close(self) -> None:
        self.con.close()


def db_counts(home: Path, url: str | None = None) -> dict[str, int]:
    """Row counts of what the runs left in RUNWAY_HOME's SQLite database (or the PostgreSQL one at `url`)."""
    q = CountQuery(home, url)
    try:
        counts = {
            "flow_runs": q("SELECT COUNT(*) FROM runs_flowrun"),
            "flow_runs_completed": q("SELECT COUNT(*) FROM runs_flowrun WHERE state_type = 'COMPLETED'"),
            "flow_run_states": q("SELECT COUNT(*) FROM runs_flowrunstate"),
            "task_runs": q("SELECT COUNT(*) FROM runs_taskrun"),
            "task_runs_completed": q("SELECT COUNT(*) FROM runs_taskrun WHERE state_type = 'COMPLETED'"),
            "task_run_states": q("SELECT COUNT(*) FROM runs_taskrunstate"),
            "logs": q("SELECT COUNT(*) FROM runs_log"),
            "task_run_logs": q("SELECT COUNT(*) FROM runs_log WHERE task_run_id IS NOT NULL"),
        }
        for state_type in ("PENDING", "RUNNING", "COMPLETED"):
            counts[f"task_run_states_{state_type.lower()}"] = q(
                f"SELECT COUNT(*) FROM runs_taskrunstate WHERE type = '{state_type}'"
            )
        # every task run must have exactly Pending, Running, Completed, in that order of time
        counts["task_runs_with_3_states"] = q(q.state_sequence("1 = 1"))
        return counts
    finally:
        q.close()


def check_counts(counts: dict[str, int], expected: dict[str, int]) -> list[str]:
    """The mismatches between `counts` and `expected`, as readable lines (empty: all good)."""
    return [f"{key}: expected {want}, found {counts.get(key)}" for key, want in expected.items() if counts.get(key) != want]


def rss_now_kib() -> int:
    """Current resident set size in KiB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return 0


def maxrss_kib() -> int:
    """Peak resident set size of this process so far, in KiB (Linux units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def summary(samples: list[float]) -> str:
    return f"min {fmt_s(min(samples))}, median {fmt_s(statistics.median(samples))}, max {fmt_s(max(samples))} (n={len(samples)})"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def noop_workload():
    """The measured workload, one definition for every benchmark: (noop task, direct flow, submit flow).

    Imports the SDK when called, after the child process set its RUNWAY_HOME.
    """
    from sdk import flow, task

    @task
    def noop(i):
        return i

    @flow
    def direct_flow(n: int) -> int:
        return sum([noop(i) for i in range(n)])

    @flow
    def submit_flow(n: int) -> int:
        return sum(f.result() for f in noop.map(range(n)))

    return noop, direct_flow, submit_flow
