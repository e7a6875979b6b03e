"""Where the time of a task run goes: queries, thread hand-offs, logging, ORM, engine.

    python bench/profile_task_run.py [all|queries|micro|ablate|cprofile|spy] [--n 2000] [--mode direct|submit]

Every section runs in its own fresh process with a fresh, empty RUNWAY_HOME, and
instruments or patches things *in that process only* (nothing under sdk/ or
orchestrator/ is changed):

queries   Counts every SQL statement per task run, as run on the orchestrator thread
          (a `connection.execute_wrapper` installed in that thread), by statement
          kind and by service; times SQLite execution and commits, the service
          calls on the orchestrator thread, and the round trip seen by the caller
          (the difference is the queue hand-off to and from the orchestrator thread).
micro     Microbenchmarks (timeit, µs per call) of the pieces a task run executes once
          or a few times: argument binding, state conversion, context and logger
          creation, one log call through each handler, the ORM statements compiled
          without executing them, model instantiation, result persistence...
ablate    The same flow of N direct task runs with parts switched off by patching:
          no console handler, no log handlers at all (lines not stored!), a no-op
          orchestrator (no database), to show what each costs end to end.
cprofile  cProfile of the caller thread and, separately, of the orchestrator thread
          (a profiler enabled inside it), top functions by own time.
spy       py-spy (--gil: only the thread holding the GIL is sampled, so the samples
          add up to the process's Python time), aggregated by category and function.

Output goes to stdout; the console log lines of the runs go to /dev/null.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import PYTHON, REPO_DIR, child_env, fmt_s, fresh_home, noop_workload, print_table, run_child  # noqa: E402

SECTIONS = ["queries", "micro", "ablate", "cprofile", "spy"]


# --- set-up shared by the children ---------------------------------------------------------
def workload():
    """The client, started, and the flows the benchmarks run (defined in __main__ of the child)."""
    import coolname  # noqa: F401
    import pydantic  # noqa: F401

    from sdk.client import get_client

    noop, direct_flow, submit_flow = noop_workload()

    client = get_client()
    direct_flow(2)  # warm: first-run lazy work (validators, log worker) out of the way
    submit_flow(2)
    return client, noop, direct_flow, submit_flow


def _silence_stdout_json(report: dict) -> None:
    print(json.dumps(report, default=str))


# --- queries: statements, hand-offs, orchestrator-thread time --------------------------------
def child_queries(n: int, mode: str) -> dict:
    client, noop, direct_flow, submit_flow = workload()
    from django.db import connections

    from sdk.client.inprocess import InProcessClient

    stats = {
        "calls": collections.Counter(), "service_time": collections.Counter(),
        "roundtrip": collections.Counter(), "to_thread": collections.Counter(),
        "from_thread": collections.Counter(),
        "stmts": collections.Counter(), "stmt_time": collections.Counter(),
        "stmt_by_service": collections.Counter(), "commits": 0, "commit_time": 0.0,
    }  # fmt: skip
    current = {"service": "-"}

    def normalize(sql: str) -> str:
        sql = sql.strip()
        verb = sql.split(None, 1)[0].upper()
        if verb == "BEGIN":
            return sql.upper()
        table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql, re.I)
        return f"{verb} {table.group(1) if table else '?'}"

    def wrapper(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            dt = time.perf_counter() - t0
            key = normalize(sql)
            stats["stmts"][key] += 1
            stats["stmt_time"][key] += dt
            stats["stmt_by_service"][(current["service"], key)] += 1

    def install() -> None:
        conn = connections["default"]
        conn.execute_wrappers.append(wrapper)
        original_commit = conn._commit

        def timed_commit():
            t0 = time.perf_counter()
            try:
                return original_commit()
            finally:
                stats["commits"] += 1
                stats["commit_time"] += time.perf_counter() - t0

        conn._commit = timed_commit

    client._call(install)
    original_call = InProcessClient._call

    def traced_call(self, fn, **kwargs):
        name = fn.__name__
        marks = {}

        def run(**kw):
            marks["start"] = time.perf_counter()
            current["service"] = name
            try:
                return fn(**kw)
            finally:
                current["service"] = "-"
                marks["end"] = time.perf_counter()

        t0 = time.perf_counter()
        result = original_call(self, run, **kwargs)
        t1 = time.perf_counter()
        stats["calls"][name] += 1
        stats["service_time"][name] += marks["end"] - marks["start"]
        stats["roundtrip"][name] += t1 - t0
        stats["to_thread"][name] += marks["start"] - t0
        stats["from_thread"][name] += t1 - marks["end"]
        return result

    InProcessClient._call = traced_call
    for key in list(stats):
        stats[key] = type(stats[key])() if not isinstance(stats[key], (int, float)) else 0
    the_flow = direct_flow if mode == "direct" else submit_flow
    t0 = time.perf_counter()
    the_flow(n)
    wall = time.perf_counter() - t0
    InProcessClient._call = original_call
    return {
        "wall": wall,
        "calls": dict(stats["calls"]), "service_time": dict(stats["service_time"]),
        "roundtrip": dict(stats["roundtrip"]), "to_thread": dict(stats["to_thread"]),
        "from_thread": dict(stats["from_thread"]),
        "stmts": dict(stats["stmts"]), "stmt_time": dict(stats["stmt_time"]),
        "stmt_by_service": {f"{s} | {k}": v for (s, k), v in stats["stmt_by_service"].items()},
        "commits": stats["commits"], "commit_time": stats["commit_time"],
    }  # fmt: skip


def show_queries(r: dict, n: int, mode: str) -> None:
    print(f"\n== queries: one {mode} flow of N={n} no-op task runs, wall {fmt_s(r['wall'])} = {fmt_s(r['wall'] / n)} per task run")
    total_stmts = sum(r["stmts"].values())
    print(f"SQL statements: {total_stmts} = {total_stmts / n:.2f} per task run (BEGIN included); "
          f"commits {r['commits']} = {r['commits'] / n:.2f} per task run, {fmt_s(r['commit_time'] / max(r['commits'], 1))} each")
    rows = [[k, v, f"{v / n:.3f}", fmt_s(r["stmt_time"][k] / v), fmt_s(r["stmt_time"][k] / n)]
            for k, v in sorted(r["stmts"].items(), key=lambda kv: -kv[1])]
    print_table(["statement", "count", "per task run", "µs each", "per task run (time)"], rows)
    print("\nstatements by service call:")
    rows = [[k, v, f"{v / n:.3f}"] for k, v in sorted(r["stmt_by_service"].items(), key=lambda kv: -kv[1])]
    print_table(["service | statement", "count", "per task run"], rows)
    print("\nclient calls (service time: on the orchestrator thread; round trip: seen by the caller):")
    rows = []
    for name, count in sorted(r["calls"].items(), key=lambda kv: -kv[1]):
        rows.append([name, count, f"{count / n:.3f}", fmt_s(r["service_time"][name] / count),
                     fmt_s(r["roundtrip"][name] / count), fmt_s(r["to_thread"][name] / count),
                     fmt_s(r["from_thread"][name] / count)])  # fmt: skip
    print_table(["service", "calls", "per task run", "service", "round trip", "queue→start", "end→caller"], rows)
    service = sum(r["service_time"].values())
    sql = sum(r["stmt_time"].values()) + r["commit_time"]
    handoff = sum(r["roundtrip"].values()) - service
    print(f"\nper task run: orchestrator-thread service time {fmt_s(service / n)}, of which SQLite execute+commit "
          f"{fmt_s(sql / n)} and Python around it (ORM, rules, schemas) {fmt_s((service - sql) / n)}; "
          f"hand-off time seen by callers {fmt_s(handoff / n)} (includes queueing behind other calls)")


# --- micro: the pieces, one at a time ---------------------------------------------------------
def child_micro() -> dict:
    import logging
    import timeit
    import uuid
    from datetime import datetime, timezone

    client, noop, direct_flow, submit_flow = workload()
    from django.utils import timezone as dj_timezone

    from orchestrator.runs.models import TaskRun, TaskRunState
    from orchestrator.runs.selectors import state_from_row
    from orchestrator.schemas import StateDetails
    from sdk.context import FlowRunContext, RunInfo, TaskRunContext
    from sdk.engine import inputs
    from sdk.engine.final_state import completed_state
    from sdk.engine.hosts import process_fields
    from sdk.engine.parameters import bind, call_arguments
    from sdk.logging import flow_run_logger, task_run_logger
    from sdk.logging.handlers import ConsoleHandler, OrchestratorHandler, RunFormatter
    from sdk.states import Pending, Running, State

    results: dict[str, float] = {}

    def bench(label: str, fn, number: int = 20000) -> None:
        best = min(timeit.repeat(fn, number=number, repeat=5))
        results[label] = best / number * 1e6

    flow_run = RunInfo(id=uuid.uuid4(), name="flow-run-name")
    fctx = FlowRunContext(client=client, flow=direct_flow, flow_run=flow_run, task_runner=direct_flow.task_runner)
    trun = RunInfo(id=uuid.uuid4(), name="noop-1", parameters={"i": 1})
    tctx = TaskRunContext(client=client, task=noop, task_run=trun, flow_run_context=fctx)

    bench("bind(fn, args, kwargs) (inspect.signature + bind)", lambda: bind(noop.fn, (1,), {}))
    bench("call_arguments (inspect.signature again)", lambda: call_arguments(noop.fn, {"i": 1}))
    bench("inputs.upstream_runs", lambda: inputs.upstream_runs({"i": 1}, None))
    bench("inputs.resolve", lambda: inputs.resolve({"i": 1}, None))
    bench("process_fields (hostname, pid)", process_fields)
    bench("uuid4()", uuid.uuid4)
    bench("fctx.next_dynamic_key", lambda: fctx.next_dynamic_key("k"))
    bench("Pending().to_schema()", lambda: Pending().to_schema())
    schema = Running().to_schema()
    bench("State.from_schema(schema)", lambda: State.from_schema(schema))
    bench("Running() + details", lambda: Running())
    bench("TaskRunContext(...)", lambda: TaskRunContext(client=client, task=noop, task_run=trun, flow_run_context=fctx))
    bench("completed_state(1) (persist inline JSON)", lambda: completed_state(1, persist=None, storage=None))
    bench("StateDetails().to_dict()", lambda: StateDetails().to_dict())
    bench("StateDetails.from_dict({})", lambda: StateDetails.from_dict({}))
    bench("django timezone.now()", dj_timezone.now)
    bench("task_run_logger(ctx) (adapter creation)", lambda: task_run_logger(tctx))
    bench("flow_run_logger(ctx) (adapter creation)", lambda: flow_run_logger(fctx))

    # one log line, through each handler separately, then through the real tree
    record_args = dict(name="runway.task_runs", level=logging.INFO, pathname=__file__, lineno=1,
                       msg="Finished in state Completed()", args=None, exc_info=None)  # fmt: skip

    def make_record():
        rec = logging.LogRecord(**record_args)
        rec.__dict__.update(task_run_id=trun.id, task_run_name="noop-1", flow_run_id=flow_run.id, flow_run_name="x")
        return rec

    bench("LogRecord creation (+ run fields)", make_record)
    fmt = RunFormatter()
    rec = make_record()
    bench("RunFormatter.format", lambda: fmt.format(rec))
    console = ConsoleHandler()
    real_stderr = sys.stderr
    sys.stderr = open(os.devnull, "w")
    try:
        bench("ConsoleHandler.handle -> /dev/null (format + write + flush)", lambda: console.handle(make_record()))
    finally:
        sys.stderr.close()
        sys.stderr = real_stderr
    # the log worker is replaced by a plain deque for these (made-up run ids would fail the foreign keys)
    import collections as _collections
    import queue as _queue

    from sdk.logging import handlers as _handlers

    class _Sink:
        def __init__(self):
            self.items = _collections.deque()

        def enqueue(self, entry):
            self.items.append(entry)

    real_worker = _handlers.log_worker
    _handlers.log_worker = lambda: _Sink()
    try:
        orch = OrchestratorHandler()
        bench("OrchestratorHandler.handle (dict + datetime; enqueue replaced by deque.append)", lambda: orch.handle(make_record()))
        logger = task_run_logger(tctx)
        sys.stderr = open(os.devnull, "w")
        try:
            bench("logger.info(...) end to end (console to /dev/null + orchestrator handler)", lambda: logger.info("Finished in state Completed()"))
        finally:
            sys.stderr.close()
            sys.stderr = real_stderr
    finally:
        _handlers.log_worker = real_worker
    q = _queue.SimpleQueue()
    bench("SimpleQueue.put (no consumer waiting)", lambda: q.put(1))
    from sdk.logging.handlers import flush_logs

    t0 = time.perf_counter()
    for _ in range(100):
        flush_logs()
    results["flush_logs() with nothing queued (wake the log worker and wait)"] = (time.perf_counter() - t0) / 100 * 1e6
    bench("datetime.fromtimestamp(t, utc)", lambda: datetime.fromtimestamp(1.7e9, timezone.utc))

    # the ORM, without executing: build and compile the queries the services run (orchestrator thread)
    def orm_micro() -> dict:
        from django.db import connection, connections

        out = {}

        def b(label, fn, number=2000):
            best = min(timeit.repeat(fn, number=number, repeat=5))
            out[label] = best / number * 1e6

        rid = uuid.uuid4()
        b("ORM: build+compile SELECT existing task run (select_related state)", lambda: TaskRun.objects.select_related("state")
          .filter(flow_run_id=rid, task_key="k", dynamic_key="1").order_by("pk")[:1].query.get_compiler(connection=connection).as_sql())
        b("ORM: build+compile SELECT run FOR UPDATE + state + flow_run", lambda: TaskRun.objects.select_for_update(of=("self",))
          .select_related("state", "flow_run").filter(pk=rid).query.get_compiler(connection=connection).as_sql())
        b("ORM: TaskRun(...) instantiation", lambda: TaskRun(id=uuid.uuid4(), flow_run_id=rid, task_key="k", dynamic_key="1",
          name="noop-1", tags=[], empirical_policy={}, task_inputs={}, hostname="h", pid=1))
        b("ORM: TaskRunState(...) instantiation", lambda: TaskRunState(id=uuid.uuid4(), type="RUNNING", name="Running",
          message="", timestamp=dj_timezone.now(), details={}, result=None, task_run_id=rid))
        row = TaskRunState(id=uuid.uuid4(), type="RUNNING", name="Running", message="", timestamp=dj_timezone.now(),
                           details={}, result=None, task_run_id=rid)  # fmt: skip
        b("state_from_row(row)", lambda: state_from_row(row))
        from django.db import transaction

        def empty_atomic():
            with transaction.atomic():
                pass

        b("transaction.atomic() empty (BEGIN IMMEDIATE + COMMIT, SQLite)", empty_atomic, number=500)
        run = TaskRun.objects.select_related("state", "flow_run").order_by("-created").first()
        b("SELECT run + state + flow_run by pk, executed (.get)", lambda: TaskRun.objects.select_related("state", "flow_run").get(pk=run.pk), number=500)
        import sqlite3

        raw = sqlite3.connect(connection.settings_dict["NAME"])
        b("raw sqlite3: same SELECT by pk, executed", lambda: raw.execute(
            'SELECT * FROM runs_taskrun t LEFT JOIN runs_taskrunstate s ON t.state_id = s.id '
            'LEFT JOIN runs_flowrun f ON t.flow_run_id = f.id WHERE t.id = ?', (run.pk.hex,)).fetchall(), number=500)
        cur = connection.cursor()
        b("Django cursor.execute('SELECT 1') (wrappers, async check, %s->? rewrite)", lambda: cur.execute("SELECT 1"), number=5000)
        b("raw sqlite3 execute('SELECT 1')", lambda: raw.execute("SELECT 1"), number=5000)
        from orchestrator.runs import store

        b("connections['default'] lookup (asgiref Local)", lambda: connections["default"], number=20000)
        now = dj_timezone.now()
        b("connection.ops.adapt_datetimefield_value(now)", lambda: connection.ops.adapt_datetimefield_value(now), number=20000)
        if hasattr(store, "_dt_param"):
            b("store._dt_param(now)", lambda: store._dt_param(now), number=20000)
        if hasattr(store, "_uuid_param"):
            b("store._uuid_param(uuid)", lambda: store._uuid_param(rid), number=20000)
        raw.close()
        return out

    results.update(client._call(orm_micro))
    try:
        from coolname import generate_slug

        bench("coolname.generate_slug(2) (once per flow run)", lambda: generate_slug(2), number=2000)
    except ImportError:
        pass
    from sdk.engine.parameters import validate

    bench("validate(flow params) with cached pydantic TypeAdapter (once per flow run)", lambda: validate(direct_flow.fn, {"n": 3}))
    bench("thread hand-off: client._call(no-op) round trip", lambda: client._call(lambda: None), number=5000)
    return results


def show_micro(r: dict) -> None:
    print("\n== micro: cost of each piece, µs per call (best of 5 timeit repeats)")
    print_table(["piece", "µs"], [[k, f"{v:.1f}"] for k, v in r.items()])


# --- ablate: end to end with parts switched off --------------------------------------------------
VARIANTS = [
    "as is", "no console handler", "no log handlers (lines not stored)", "level WARNING (lines not stored)",
    "gc disabled", "sys.setswitchinterval(0.0005)", "4 task runner threads (RUNWAY_TASK_RUNNER_THREADS=4)",
    "no database (client answers ACCEPT in the caller)",
]


def child_ablate(n: int, variant: str, mode: str) -> dict:
    import logging

    if variant.startswith("4 task runner threads"):
        os.environ["RUNWAY_TASK_RUNNER_THREADS"] = "4"
    elif variant == "sys.setswitchinterval(0.0005)":
        sys.setswitchinterval(0.0005)

    client, noop, direct_flow, submit_flow = workload()
    root = logging.getLogger("runway")
    from sdk.logging.handlers import ConsoleHandler, OrchestratorHandler

    if variant == "no console handler":
        for h in list(root.handlers):
            if isinstance(h, ConsoleHandler):
                root.removeHandler(h)
    elif variant == "no log handlers (lines not stored)":
        for h in list(root.handlers):
            if isinstance(h, (ConsoleHandler, OrchestratorHandler)):
                root.removeHandler(h)
    elif variant == "level WARNING (lines not stored)":
        root.setLevel(logging.WARNING)
    elif variant == "gc disabled":
        import gc

        gc.disable()
    elif variant.startswith("no database"):
        import uuid
        from datetime import datetime, timezone

        from orchestrator.schemas import OrchestrationResult, SetStateStatus

        def accept(state):
            return OrchestrationResult(SetStateStatus.ACCEPT, state.copy(id=uuid.uuid4(), timestamp=datetime.now(timezone.utc)))

        client.create_task_run = lambda **kw: (kw.get("run_id") or uuid.uuid4(), accept(kw.get("then") or kw["state"]))
        client.set_task_run_state = lambda run_id, state, force=False: accept(state)
        client.create_flow_run = lambda **kw: (uuid.uuid4(), accept(kw["state"]))
        client.set_flow_run_state = lambda run_id, state, force=False: accept(state)
        client.write_logs = lambda logs: None
    the_flow = direct_flow if mode == "direct" else submit_flow
    t0 = time.perf_counter()
    the_flow(n)
    return {"wall": time.perf_counter() - t0}


# --- cprofile: caller thread and orchestrator thread separately ------------------------------------
def child_cprofile(n: int, mode: str, top: int) -> dict:
    import cProfile
    import io
    import pstats

    client, noop, direct_flow, submit_flow = workload()
    from sdk.logging import handlers

    main_prof, orch_prof, log_prof = cProfile.Profile(), cProfile.Profile(), cProfile.Profile()
    client._call(orch_prof.enable)
    # the log worker thread: profile its next writes by wrapping them
    handlers.flush_logs()
    worker = handlers.log_worker()
    original_write = worker._write

    def profiled_write(batch):
        log_prof.enable()
        try:
            original_write(batch)
        finally:
            log_prof.disable()

    worker._write = profiled_write
    the_flow = direct_flow if mode == "direct" else submit_flow
    main_prof.enable()
    t0 = time.perf_counter()
    the_flow(n)
    wall = time.perf_counter() - t0
    main_prof.disable()
    client._call(orch_prof.disable)

    def table(prof, sort):
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.strip_dirs().sort_stats(sort).print_stats(top)
        total = sum(v[2] for v in stats.stats.values())  # sum of own time
        return out.getvalue(), total

    report = {"wall": wall}
    for label, prof in [("caller (main) thread", main_prof), ("orchestrator thread", orch_prof), ("log worker thread (writes)", log_prof)]:
        report[label] = {sort: table(prof, sort)[0] for sort in ("tottime", "cumulative")}
        report[label]["total"] = table(prof, "tottime")[1]
    return report


def show_cprofile(r: dict, n: int, mode: str) -> None:
    print(f"\n== cprofile: {mode} flow of N={n}, wall under the profiler {fmt_s(r['wall'])} (profiling inflates it)")
    for label in ("caller (main) thread", "orchestrator thread", "log worker thread (writes)"):
        part = r[label]
        print(f"\n--- {label}: profiled own time {fmt_s(part['total'])} = {fmt_s(part['total'] / n)} per task run")
        for sort in ("tottime", "cumulative"):
            text = part[sort]
            body = text[text.find("   ncalls"):] if "   ncalls" in text else text
            print(f"[sorted by {sort}]")
            print(body.rstrip())


# --- spy: py-spy --gil, aggregated -------------------------------------------------------------------
CATEGORIES = [  # first match wins, checked from the innermost frame outwards
    ("SQLite execute (C)", re.compile(r"SQLiteCursorWrapper\.execute")),
    ("SQLite commit", re.compile(r"\b_commit \(")),
    ("Django ORM / db layer", re.compile(r"django/")),
    ("orchestrator rules + services", re.compile(r"orchestrator/")),
    ("logging (stdlib + sdk.logging)", re.compile(r"logging/__init__\.py|sdk/logging/")),
    ("thread pool / futures / queue", re.compile(r"concurrent/futures|threading\.py|queue\.py")),
    ("inspect (signature)", re.compile(r"inspect\.py")),
    ("dataclasses / enum / uuid / copy", re.compile(r"dataclasses\.py|enum\.py|uuid\.py|copy\.py")),
    ("sdk engine + states + results", re.compile(r"sdk/")),
]


def short(frame: str) -> str:
    """'func (path/to/file.py:12)' -> 'func (file.py)'."""
    m = re.match(r"(.*) \((.*?):\d+\)$", frame)
    return f"{m.group(1)} ({m.group(2).split('/')[-1]})" if m else frame


def spy(n: int, mode: str, rate: int, keep_raw: str | None = None) -> None:
    if subprocess.run(["which", "py-spy"], capture_output=True).returncode != 0 and not os.path.exists(os.path.join(os.path.dirname(PYTHON), "py-spy")):
        print("py-spy not found; skipping spy")
        return
    spy_bin = os.path.join(os.path.dirname(PYTHON), "py-spy")
    spy_bin = spy_bin if os.path.exists(spy_bin) else "py-spy"
    with fresh_home() as home, tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "spy.txt")
        cmd = [spy_bin, "record", "--gil", "--threads", "-r", str(rate), "-f", "raw", "-o", raw, "--",
               PYTHON, __file__, "--child", "spyload", "--n", str(n), "--mode", mode]  # fmt: skip
        subprocess.run(cmd, env=child_env(home), cwd=str(REPO_DIR), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        if keep_raw:
            shutil.copy(raw, keep_raw)
        by_thread: collections.Counter = collections.Counter()
        by_cat: collections.Counter = collections.Counter()
        by_thread_cat: collections.Counter = collections.Counter()
        own: collections.Counter = collections.Counter()
        inclusive: collections.Counter = collections.Counter()
        total = 0
        with open(raw) as f:
            for line in f:
                stack, _, count = line.rstrip().rpartition(" ")
                count = int(count)
                frames = stack.split(";")
                thread = frames[0].split(":", 1)[-1].strip() if ":" in frames[0] else frames[0]
                thread = "runway-task pool" if thread.startswith("runway-task") else thread
                # keep the measured flow only: drop start-up (imports, migrations, warm-up runs)
                if not any("measured_flow" in fr for fr in frames) and thread == "MainThread":
                    continue
                if any(mark in fr for fr in frames for mark in ("ensure_database", "_find_and_load", "workload (")):
                    continue
                total += count
                by_thread[thread] += count
                cat = "other"
                for fr in reversed(frames[1:]):
                    for name, pattern in CATEGORIES:
                        if pattern.search(fr):
                            cat = name
                            break
                    if cat != "other":
                        break
                by_cat[cat] += count
                by_thread_cat[(thread, cat)] += count
                for fn in {short(fr) for fr in frames[1:]}:
                    inclusive[(thread, fn)] += count
                own[re.sub(r" \(.*?:\d+\)", lambda m: " (" + m.group(0).split("(")[1].split(":")[0].split("/")[-1] + ")", frames[-1])] += count
    print(f"\n== spy: py-spy --gil at {rate} Hz over the {mode} flow of N={n} (start-up dropped); "
          f"{total} samples = {total / rate:.2f} s holding the GIL")
    print("   (--gil samples only the thread holding the GIL: SQLite releases it while executing and committing,")
    print("    so the database's own time is not in these samples; see the queries section for it)")
    print_table(["thread", "samples", "share"], [[t, c, f"{c / total:.0%}"] for t, c in by_thread.most_common()])
    print()
    print_table(["category (innermost matching frame)", "samples", "share"], [[k, v, f"{v / total:.0%}"] for k, v in by_cat.most_common()])
    print()
    print_table(["thread / category", "samples", "share"], [[f"{t} / {c}", v, f"{v / total:.0%}"] for (t, c), v in by_thread_cat.most_common(25)])
    print()
    print_table(["innermost function (own time)", "samples", "share"], [[k[:90], v, f"{v / total:.1%}"] for k, v in own.most_common(30)])
    for thread in [t for t, _ in by_thread.most_common(3)]:
        print(f"\ninclusive time in {thread} (samples where the function is on the stack; µs per task run at {rate} Hz)")
        rows = [[fn[:90], v, f"{v / total:.1%}", f"{v / rate / n * 1e6:.0f}"]
                for (t, fn), v in inclusive.most_common() if t == thread][:45]
        print_table(["function", "samples", "share", "µs/task"], rows)


def child_spyload(n: int, mode: str) -> None:
    client, noop, direct_flow, submit_flow = workload()

    def measured_flow():
        (direct_flow if mode == "direct" else submit_flow)(n)

    measured_flow()


# --- driver ------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("section", nargs="?", default="all", choices=["all", *SECTIONS])
    parser.add_argument("--n", type=int, default=2000, help="task runs in the profiled flow")
    parser.add_argument("--mode", default="direct", choices=["direct", "submit"])
    parser.add_argument("--top", type=int, default=25, help="cprofile: functions shown")
    parser.add_argument("--repeat", type=int, default=3, help="ablate: runs per variant (the best is shown)")
    parser.add_argument("--rate", type=int, default=1000, help="spy: samples per second")
    parser.add_argument("--spy-raw", help="spy: also keep py-spy's raw (collapsed stacks) output in this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "queries":
        return _silence_stdout_json(child_queries(args.n, args.mode))
    if args.child == "micro":
        return _silence_stdout_json(child_micro())
    if args.child == "ablate":
        return _silence_stdout_json(child_ablate(args.n, args.variant, args.mode))
    if args.child == "cprofile":
        return _silence_stdout_json(child_cprofile(args.n, args.mode, args.top))
    if args.child == "spyload":
        return child_spyload(args.n, args.mode)

    sections = SECTIONS if args.section == "all" else [args.section]
    common = ["--n", str(args.n), "--mode", args.mode]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, SQLite, N={args.n}, mode={args.mode}")
    for section in sections:
        if section == "spy":
            spy(args.n, args.mode, args.rate, args.spy_raw)
            continue
        if section == "ablate":
            rows = []
            base = None
            for variant in VARIANTS:
                walls = []
                for _ in range(args.repeat):
                    with fresh_home() as home:
                        walls.append(run_child([__file__, "--child", "ablate", "--variant", variant, *common], home)["wall"])
                wall = min(walls)
                base = base or wall
                rows.append([variant, fmt_s(wall), fmt_s(wall / args.n), fmt_s((base - wall) / args.n),
                             ", ".join(fmt_s(w / args.n) for w in walls)])  # fmt: skip
            print(f"\n== ablate: {args.mode} flow of N={args.n}, each variant in a fresh process and home, best of {args.repeat}")
            print_table(["variant", "wall", "per task run", "saved per task run", "all runs, per task run"], rows)
            continue
        with fresh_home() as home:
            r = run_child([__file__, "--child", section, *common, "--top", str(args.top)], home)
        if section == "queries":
            show_queries(r, args.n, args.mode)
        elif section == "micro":
            show_micro(r)
        elif section == "cprofile":
            show_cprofile(r, args.n, args.mode)


if __name__ == "__main__":
    main()
