"""The cost of the HTTP transport: one flow of N no-op task runs, in process and through a live server.

    python bench/http_transport.py [--n 1000] [--modes direct,submit] [--repeat 1]

For each transport and mode a fresh RUNWAY_HOME (SQLite) is made. In process,
the child runs the flow against it directly. Over HTTP, `manage.py server`
serves that home on a free port and the child runs the same flow with
RUNWAY_API_URL and the server's first token. Per task run:

    overhead = (flow wall time - plain functions' wall time) / N

and the HTTP transport's extra cost is the difference between the two. The server
runs in its own process on the same two cores, so its work competes with the
flow's: this is the cost of a server on the same machine, the usual local set-up.
Afterwards the parent counts the rows in the database (every task run Completed
with its 3 states, every log line) and prints FAIL if anything is missing.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import PYTHON, REPO_DIR, check_counts, child_env, db_counts, fmt_s, fresh_home, noop_workload, print_table, run_child  # noqa: E402

POOL_THREADS = 16


def child(n: int, mode: str) -> dict:
    """Time the flow once in this process (transport chosen by the environment), then the plain functions."""
    from concurrent.futures import ThreadPoolExecutor

    import coolname  # noqa: F401  (keep the first flow run's lazy imports out of the timing)
    import pydantic  # noqa: F401

    from sdk.client import get_client

    noop, direct_flow, submit_flow = noop_workload()
    get_client()
    the_flow = direct_flow if mode == "direct" else submit_flow
    t0 = time.perf_counter()
    got = the_flow(n)
    wall = time.perf_counter() - t0
    if got != n * (n - 1) // 2:
        raise SystemExit(f"flow returned {got}")
    t0 = time.perf_counter()
    if mode == "direct":
        sum(noop.fn(i) for i in range(n))
    else:
        with ThreadPoolExecutor(POOL_THREADS) as pool:
            sum(f.result() for f in [pool.submit(noop.fn, i) for i in range(n)])
    return {"wall": wall, "plain": time.perf_counter() - t0}


def start_server(home: Path) -> tuple[subprocess.Popen, str, str]:
    """A server on `home` and a free port: (process, API URL, the first account's token)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = home / "server.log"
    proc = subprocess.Popen([PYTHON, "manage.py", "server", "--port", str(port)], cwd=REPO_DIR, env=child_env(home),
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"RUNWAY_API_KEY=(\S+)", log.read_text())
        if found and "Runway server at" in log.read_text():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc, f"http://127.0.0.1:{port}/api", found.group(1)
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"FAIL: the server did not start; see {log}")


def measure(n: int, mode: str, transport: str) -> tuple[dict, list[str]]:
    with fresh_home() as home:
        server = None
        extra: dict[str, str] = {}
        if transport == "http":
            server, url, token = start_server(home)
            extra = {"RUNWAY_API_URL": url, "RUNWAY_API_KEY": token}
        try:
            report = run_child([__file__, "--child", "--n", str(n), "--mode", mode], home, **extra)
        finally:
            if server:
                server.terminate()
                server.wait(timeout=30)
        counts = db_counts(home)
    expected = {"task_runs_completed": n, "task_run_states": 3 * n, "task_runs_with_3_states": n, "logs": 3 * n + 1}
    return report, check_counts(counts, expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--modes", default="direct,submit")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the fastest is shown")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.n, args.mode)))
        return
    rows, failures = [], []
    for mode in args.modes.split(","):
        per_task = {}
        for transport in ("in-process", "http"):
            runs = [measure(args.n, mode, transport) for _ in range(args.repeat)]
            report, problems = min(runs, key=lambda r: r[0]["wall"])
            failures += [f"{mode} {transport}: {p}" for p in problems]
            per_task[transport] = (report["wall"] - report["plain"]) / args.n
            rows.append([mode, transport, args.n, fmt_s(report["wall"]), fmt_s(per_task[transport]),
                         "ok" if not problems else "FAIL"])  # fmt: skip
            print(f"  done: {mode} {transport}", file=sys.stderr, flush=True)
        rows.append([mode, "HTTP extra", "", "", fmt_s(per_task["http"] - per_task["in-process"]), ""])
    print_table(["mode", "transport", "N", "flow wall", "overhead/task", "recorded"], rows)
    if failures:
        print("\nFAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
