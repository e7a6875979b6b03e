"""Cold start: `python bench/one_task_flow.py` timed in fresh processes.

    python bench/cold_start.py [--runs 5] [--rounds 3]

Each round makes a new, empty RUNWAY_HOME and runs the script --runs times in it,
each time in a new process: the first run is "empty home" (first use: the
database file is created and migrated), the others "existing database". The
wall time of the whole process (interpreter start to exit, including the at-exit
log flush) is measured from outside. For reference the script also times
`python -c pass` and `python -c "import sdk"` (import of the public API only;
Django is not imported until the first run). The console log lines go to /dev/null.

Bytecode: if PYTHONDONTWRITEBYTECODE is set (it is in some sandboxes), the repo's
own modules have no .pyc and are compiled on every start. The script then measures
both "as configured" and "with bytecode cached" (PYTHONDONTWRITEBYTECODE unset,
PYTHONPYCACHEPREFIX pointing at a temporary directory warmed by one untimed run, so
nothing is written into the source tree). Choose with --bytecode env|cached|both.

Target: a one-task flow completes in < 1.5 s from a cold process.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BENCH_DIR, PYTHON, REPO_DIR, child_env, db_counts, fresh_home, summary  # noqa: E402


def timed(args: list[str], home, extra_env: dict[str, str]) -> float:
    env = child_env(home)
    if "PYTHONPYCACHEPREFIX" in extra_env:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra_env)
    t0 = time.perf_counter()
    proc = subprocess.run([PYTHON, *args], env=env, cwd=str(REPO_DIR),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: python {' '.join(args)} exited with {proc.returncode}")
    return elapsed


def measure(label: str, runs: int, rounds: int, extra_env: dict[str, str]) -> list[str]:
    script = str(BENCH_DIR / "one_task_flow.py")
    empty, existing, failures = [], [], []
    for _ in range(rounds):
        with fresh_home(prefix="runway-cold-") as home:
            for i in range(runs):
                (empty if i == 0 else existing).append(timed([script], home, extra_env))
            counts = db_counts(home)
            want = {"flow_runs": runs, "flow_runs_completed": runs, "task_runs_completed": runs,
                    "task_run_states": 3 * runs, "logs": 4 * runs}  # fmt: skip
            failures += [f"{k}: expected {v}, found {counts[k]}" for k, v in want.items() if counts[k] != v]

    with fresh_home(prefix="runway-cold-") as home:
        bare = [timed(["-c", "pass"], home, extra_env) for _ in range(5)]
        import_sdk = [timed(["-c", "import sdk"], home, extra_env) for _ in range(5)]
        import_all = [timed(["-c", IMPORT_ALL], home, extra_env) for _ in range(5)]

    print(f"{label}: `python bench/one_task_flow.py`, whole process:")
    print(f"  empty home (first use, migrates): {summary(empty)}")
    print(f"  existing database:                {summary(existing)}")
    print("  for reference:")
    print(f"    python -c pass:                 {summary(bare)}")
    print(f"    python -c 'import sdk':         {summary(import_sdk)}")
    print(f"    import sdk, django.setup(), engine and services modules (no database): {summary(import_all)}")
    return failures


IMPORT_ALL = "import sdk.client.database as d; d.setup_django(); import orchestrator.runs.services, sdk.engine.calls"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="processes per round (the first in an empty home)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each in a new empty RUNWAY_HOME")
    parser.add_argument("--bytecode", choices=["env", "cached", "both"],
                        default="both" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "env")
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, SQLite")
    failures = []
    if args.bytecode in ("env", "both"):
        label = "as configured" + (" (PYTHONDONTWRITEBYTECODE=1: repo modules compiled at every start)"
                                   if os.environ.get("PYTHONDONTWRITEBYTECODE") else "")
        failures += measure(label, args.runs, args.rounds, {})
    if args.bytecode in ("cached", "both"):
        with tempfile.TemporaryDirectory(prefix="runway-bench-pyc-") as pyc:
            extra = {"PYTHONPYCACHEPREFIX": pyc}
            with fresh_home(prefix="runway-cold-") as home:  # untimed: fills the bytecode cache
                timed([str(BENCH_DIR / "one_task_flow.py")], home, extra)
            failures += measure("with bytecode cached", args.runs, args.rounds, extra)
    print("target: < 1.5 s for a cold one-task flow")
    if failures:
        print("FAIL: runs not recorded: " + "; ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
