"""Where a cold one-task flow's time goes: phases of the process, and the biggest imports.

    python bench/cold_profile.py [--top 25]

1. Phases: a fresh process does, step by step and timed, what `python
   bench/one_task_flow.py` does implicitly (import sdk; set up Django; check/apply
   migrations; start the client; import the engine; the first flow call; the at-exit
   flush and close). Run twice: in an empty RUNWAY_HOME (migrations happen) and
   again on the existing database. Interpreter start-up is `python -c pass`.
2. Imports: `python -X importtime bench/one_task_flow.py` on the existing database
   (imports done in the orchestrator thread are included), summarized by top-level
   package (sum of self times) and the largest single imports (cumulative).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import BENCH_DIR, PYTHON, REPO_DIR, child_env, fmt_s, fresh_home, print_table, run_child  # noqa: E402


def child() -> dict:
    marks = []
    t = time.perf_counter()

    def mark(label: str) -> None:
        nonlocal t
        now = time.perf_counter()
        marks.append((label, now - t))
        t = now

    import sdk  # noqa: F401

    mark("import sdk (public API)")
    from sdk.client.database import _unapplied_migrations, ensure_database, setup_django

    setup_django()
    mark("django.setup() (imports Django, settings, apps, models)")
    pending = _unapplied_migrations()
    mark("migration check (glob migrations/, SELECT django_migrations)")
    ensure_database()
    mark(f"migrate ({len(pending)} unapplied migrations)" if pending else "ensure_database() again (nothing to do)")
    from sdk.client import get_client

    get_client()
    mark("get_client() (orchestrator thread, its own checks, orphan sweep)")
    import sdk.engine.calls  # noqa: F401

    mark("import sdk.engine.calls (engine modules, imported at the first call)")
    from one_task_flow import hello_flow

    mark("import the user's script")
    hello_flow()
    mark("first flow call (1 task): lazy imports, coolname, pydantic validators, 6 states, logs flushed")
    hello_flow()
    mark("second flow call (same flow, warm)")
    from sdk.client import close_client

    close_client()
    mark("close_client() (at exit: flush logs, stop threads)")
    return {"marks": marks}


def importtime(home) -> list[tuple[str, int, int, int]]:
    env = child_env(home)
    proc = subprocess.run([PYTHON, "-X", "importtime", str(BENCH_DIR / "one_task_flow.py")], env=env,
                          cwd=str(REPO_DIR), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        head, cum, raw = line.split("|", 2)
        self_us, cum_us = int(head.split(":")[-1]), int(cum)
        depth = (len(raw) - len(raw.lstrip()) - 1) // 2
        rows.append((raw.strip(), self_us, cum_us, depth))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child()))
        return

    with fresh_home() as home:
        bare = min(_timed(["-c", "pass"], home) for _ in range(5))
        empty = run_child([__file__, "--child"], home)["marks"]
        existing = run_child([__file__, "--child"], home)["marks"]
        imports = importtime(home)
        imports2 = importtime(home)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, SQLite")
    print(f"\n== phases (interpreter start-up alone, `python -c pass`: {fmt_s(bare)})")
    labels = [m[0] for m in existing]
    rows = []
    for i, (label, seconds) in enumerate(empty):
        other = existing[i][1] if i < len(existing) else None
        rows.append([label if i != 3 else f"{label} / {labels[3]}", fmt_s(seconds), fmt_s(other) if other is not None else "-"])
    rows.append(["total (after interpreter start-up)", fmt_s(sum(s for _, s in empty)), fmt_s(sum(s for _, s in existing))])
    print_table(["phase", "empty home", "existing database"], rows)

    # imports: take, per module, the smaller of two runs (less noise)
    best = {}
    for name, self_us, cum_us, depth in imports + imports2:
        prev = best.get(name)
        if prev is None or cum_us < prev[1]:
            best[name] = (self_us, cum_us, depth)
    total_self = sum(v[0] for v in best.values())
    by_pkg: collections.Counter = collections.Counter()
    count_pkg: collections.Counter = collections.Counter()
    for name, (self_us, _, _) in best.items():
        by_pkg[name.split(".")[0]] += self_us
        count_pkg[name.split(".")[0]] += 1
    print(f"\n== imports (python -X importtime bench/one_task_flow.py, existing database): {len(best)} modules, "
          f"{fmt_s(total_self / 1e6)} of import time in total")
    print_table(["top-level package", "modules", "self time (sum)", "share"],
                [[p, count_pkg[p], fmt_s(us / 1e6), f"{us / total_self:.0%}"] for p, us in by_pkg.most_common(args.top)])
    print()
    top_level = sorted(((n, v) for n, v in best.items() if v[2] <= 1), key=lambda kv: -kv[1][1])[: args.top]
    print_table(["import (nesting depth <= 1), cumulative", "cumulative", "self"],
                [[("  " * v[2]) + n, fmt_s(v[1] / 1e6), fmt_s(v[0] / 1e6)] for n, v in top_level])
    print()
    biggest_self = sorted(best.items(), key=lambda kv: -kv[1][0])[: args.top]
    print_table(["module, by own (self) import time", "self", "cumulative"],
                [[n, fmt_s(v[0] / 1e6), fmt_s(v[1] / 1e6)] for n, v in biggest_self])


def _timed(args, home) -> float:
    t0 = time.perf_counter()
    subprocess.run([PYTHON, *args], env=child_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
