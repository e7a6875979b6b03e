"""The database's share: a task run's statements replayed with the stdlib sqlite3 module, no Django, no engine.

    python bench/sqlite_floor.py [--n 5000]

Makes Runway's schema (by running bench/one_task_flow.py in a fresh RUNWAY_HOME),
then replays what one directly called task run writes, N times, with the
settings Runway uses (WAL, synchronous=NORMAL, BEGIN IMMEDIATE):

  txn 1  INSERT task run; INSERT state Pending; INSERT state Running; UPDATE task run; COMMIT
  txn 2  SELECT run + state + flow run; INSERT state Completed; UPDATE task run; COMMIT
  logs   3 lines per task run, inserted in batches of 500 (executemany)

and variants, each on a fresh copy of the schema: the first state inserted before
the run, an index on runs_taskrun(state_id), foreign keys not enforced,
synchronous=OFF, no JSON CHECK constraints, no redundant indexes on the Log table,
a larger page cache, one commit per 50 task runs (group commit). The figure is the
cost per task run of SQLite itself: what is left when all Python around it is gone.

Why the foreign keys matter: runs_taskrun.state_id references runs_taskrunstate
DEFERRABLE INITIALLY DEFERRED and has no index. While a deferred violation is
pending (the run row is inserted pointing at a state row not inserted yet, or a
state row is inserted before its run), inserting a state row makes SQLite look for
runs_taskrun rows whose state_id points at it: a full scan of runs_taskrun, so the
cost of creating a task run grows with the number of task runs in the database.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import subprocess  # noqa: E402

from _common import BENCH_DIR, PYTHON, REPO_DIR, child_env, fmt_s, fresh_home, print_table  # noqa: E402


def make_schema(dest: str) -> None:
    with fresh_home() as home:
        subprocess.run([PYTHON, str(BENCH_DIR / "one_task_flow.py")], env=child_env(home), cwd=str(REPO_DIR),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # fmt: skip
        src = sqlite3.connect(str(home / "runway.sqlite3"))
        out = sqlite3.connect(dest)
        src.backup(out)
        src.close()
        out.close()


def strip_checks(path: str) -> None:
    """Rebuild the run/state/log tables without their JSON_VALID CHECK constraints."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA foreign_keys=OFF")
    con.execute("PRAGMA legacy_alter_table=ON")  # keep other tables' references pointing at the new table
    con.execute("BEGIN")
    for (name, sql) in con.execute("SELECT name, sql FROM sqlite_master WHERE type='table' AND name LIKE 'runs_%'").fetchall():
        if "JSON_VALID" not in sql:
            continue
        new_sql = re.sub(r'\s*CHECK \(\(JSON_VALID\("\w+"\) OR "\w+" IS NULL\)\)', "", sql)
        indexes = [r[0] for r in con.execute("SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name=? AND sql IS NOT NULL", (name,))]
        con.execute(f'ALTER TABLE "{name}" RENAME TO "{name}_old"')
        con.execute(new_sql.replace(f'"{name}"', f'"{name}"', 1))
        con.execute(f'INSERT INTO "{name}" SELECT * FROM "{name}_old"')
        con.execute(f'DROP TABLE "{name}_old"')
        for idx in indexes:
            con.execute(idx)
    con.execute("COMMIT")
    con.close()


def drop_log_indexes(path: str) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='runs_log' AND sql IS NOT NULL").fetchall():
        if name != "log_taskrun_time" and name != "log_flowrun_time":
            con.execute(f'DROP INDEX "{name}"')
    con.close()


def replay(path: str, n: int, *, cache_kib: int | None = None, group: int = 1, state_first: bool = False,
           foreign_keys: bool = True, synchronous: str = "NORMAL") -> dict:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={synchronous}")
    con.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    if cache_kib:
        con.execute(f"PRAGMA cache_size=-{cache_kib}")
    flow_run_id = con.execute("SELECT id FROM runs_flowrun LIMIT 1").fetchone()[0]
    now = datetime.now(timezone.utc)
    ts = lambda: (now + timedelta(microseconds=time.perf_counter_ns() // 1000)).strftime("%Y-%m-%d %H:%M:%S.%f")  # noqa: E731
    state_sql = ("INSERT INTO runs_taskrunstate (id, type, name, message, timestamp, details, result, task_run_id) "
                 "VALUES (?, ?, ?, '', ?, ?, ?, ?)")  # fmt: skip
    run_sql = ("INSERT INTO runs_taskrun (id, name, tags, empirical_policy, state_id, state_type, state_name, "
               "state_timestamp, run_count, start_time, end_time, total_run_time, expected_start_time, "
               "next_scheduled_start_time, hostname, pid, created, task_key, dynamic_key, cache_key, "
               "cache_expiration, task_inputs, flow_run_run_count, flow_run_id) "
               "VALUES (?, ?, '[]', ?, ?, 'PENDING', 'Pending', ?, 0, NULL, NULL, 0, ?, NULL, 'host', 1, ?, "
               "'bench.noop', ?, NULL, NULL, '{}', 0, ?)")  # fmt: skip
    update_sql = ("UPDATE runs_taskrun SET state_id = ?, state_type = ?, state_name = ?, state_timestamp = ?, "
                  "run_count = ?, start_time = ?, end_time = ?, total_run_time = ?, expected_start_time = ?, "
                  "next_scheduled_start_time = NULL, flow_run_run_count = 1 WHERE id = ?")  # fmt: skip
    select_sql = ("SELECT r.*, s.*, f.state_type, f.state_name, f.run_count FROM runs_taskrun r "
                  "LEFT JOIN runs_taskrunstate s ON s.id = r.state_id LEFT JOIN runs_flowrun f ON f.id = r.flow_run_id "
                  "WHERE r.id = ?")  # fmt: skip
    log_sql = "INSERT INTO runs_log (level, name, message, timestamp, flow_run_id, task_run_id) VALUES (?, ?, ?, ?, ?, ?)"
    policy = json.dumps({"retries": 0, "retry_delay": [], "retry_jitter_factor": None})
    logs: list[tuple] = []
    commits = 0
    t0 = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    for i in range(n):
        run_id = uuid.uuid4().hex
        pending, running, completed = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
        t = ts()
        if state_first:
            con.execute(state_sql, (pending, "PENDING", "Pending", t, "{}", None, run_id))
            con.execute(run_sql, (run_id, f"noop-{i}", policy, pending, t, t, t, str(i), flow_run_id))
        else:  # as the services do: the run first, pointing at a state row not inserted yet
            con.execute(run_sql, (run_id, f"noop-{i}", policy, pending, t, t, t, str(i), flow_run_id))
            con.execute(state_sql, (pending, "PENDING", "Pending", t, "{}", None, run_id))
        con.execute(state_sql, (running, "RUNNING", "Running", ts(), "{}", None, run_id))
        con.execute(update_sql, (running, "RUNNING", "Running", t, 1, t, None, 0.0, t, run_id))
        logs.append((20, "runway.flow_runs", f"Created task run 'noop-{i}' for task 'noop'", t, flow_run_id, None))
        logs.append((20, "runway.flow_runs", f"Executing 'noop-{i}' immediately...", t, flow_run_id, None))
        if group == 1:
            con.execute("COMMIT")
            commits += 1
            con.execute("BEGIN IMMEDIATE")
        con.execute(select_sql, (run_id,)).fetchone()
        t2 = ts()
        con.execute(state_sql, (completed, "COMPLETED", "Completed", t2, "{}", '{"type": "json", "value": 1}', run_id))
        con.execute(update_sql, (completed, "COMPLETED", "Completed", t2, 1, t, t2, 0.001, t, run_id))
        logs.append((20, "runway.task_runs", "Finished in state Completed()", t2, flow_run_id, run_id))
        if (i + 1) % group == 0:
            con.execute("COMMIT")
            commits += 1
            con.execute("BEGIN IMMEDIATE")
        if len(logs) >= 500:
            con.executemany(log_sql, logs)
            logs = []
    con.executemany(log_sql, logs)
    con.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    rows = con.execute("SELECT COUNT(*) FROM runs_taskrunstate").fetchone()[0]
    con.close()
    return {"per_task": elapsed / n, "commits": commits, "states": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="runway-sqlite-")
    try:
        base = os.path.join(tmp, "base.sqlite3")
        make_schema(base)
        nochecks = os.path.join(tmp, "nochecks.sqlite3")
        shutil.copy(base, nochecks)
        strip_checks(nochecks)
        nologidx = os.path.join(tmp, "nologidx.sqlite3")
        shutil.copy(base, nologidx)
        drop_log_indexes(nologidx)
        stateidx = os.path.join(tmp, "stateidx.sqlite3")
        shutil.copy(base, stateidx)
        con = sqlite3.connect(stateidx)
        con.execute("CREATE INDEX bench_taskrun_state ON runs_taskrun (state_id)")
        con.close()
        variants = [
            ("as Runway writes it (run row, then its first state; 2 commits per task run)", base, {}),
            ("same, N/5 task runs (to see the growth with N)", base, {"n": max(args.n // 5, 1)}),
            ("first state row inserted before the run row", base, {"state_first": True}),
            ("index on runs_taskrun(state_id)", stateidx, {}),
            ("foreign_keys=OFF (as if the state_id FK were not enforced)", base, {"foreign_keys": False}),
            ("FK off + synchronous=OFF (diagnostic: the fsyncs of WAL checkpoints)", base, {"foreign_keys": False, "synchronous": "OFF"}),
            ("FK off + no JSON_VALID CHECK constraints", nochecks, {"foreign_keys": False}),
            ("FK off + Log without its 2 redundant single-column indexes", nologidx, {"foreign_keys": False}),
            ("FK off + cache_size 64 MiB", base, {"foreign_keys": False, "cache_kib": 65536}),
            ("FK off + group commit: one commit per 50 task runs", base, {"foreign_keys": False, "group": 50}),
        ]
        rows = []
        for label, src, options in variants:
            path = os.path.join(tmp, "run.sqlite3")
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)
            shutil.copy(src, path)
            n = options.pop("n", args.n)
            r = replay(path, n, **options)
            rows.append([label, n, fmt_s(r["per_task"]), f"{r['commits'] / n:.2f}"])
        print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs; "
              f"raw sqlite3 replay of N={args.n} direct task runs (9 statements + 3 log lines each)")
        print_table(["variant", "N", "per task run", "commits per task run"], rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
