"""Running calls at the same moment from threads (each on its own database connection), in process
or as HTTP requests to the live server, and watching the server's log meanwhile."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from django.db import connection


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at the same moment, one thread each; each thread gives its database connection
    back. Exceptions are returned in place of results."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[index] = calls[index]()
        except BaseException as exc:  # noqa: BLE001 (returned, asserted by the caller)
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,), name=f"proposer-{i}") for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a proposal never returned"
    return results


def http_at_once(base_url: str, token: str, requests: list[tuple[str, dict]]) -> list[tuple[int, Any]]:
    """POST each (path, body) at the same moment, one thread each, on one shared connection pool.
    Answers (status code, JSON body); a 5xx or a transport error fails the test."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120,
                      limits=httpx.Limits(max_connections=len(requests))) as client:  # fmt: skip
        replies = at_once([lambda path=path, body=body: client.post(path, json=body) for path, body in requests])
    errors = [r for r in replies if isinstance(r, BaseException)]
    assert not errors, errors
    server_errors = [(r.status_code, r.text[:300]) for r in replies if r.status_code >= 500]
    assert not server_errors, server_errors
    return [(r.status_code, r.json()) for r in replies]


class ServerLog:
    """The live server's log from now on: no traceback, deadlock or lock timeout may appear in it."""

    BAD = ("Traceback", "deadlock detected", "database is locked", "could not serialize", "Internal Server Error")

    def __init__(self, base_url: str) -> None:
        port = base_url.rsplit(":", 1)[1]
        self.path = Path(os.environ["RUNWAY_HOME"]) / f"server-{port}.log"
        assert self.path.exists(), f"no log of the live server at {self.path}"
        self.offset = self.path.stat().st_size

    def assert_clean(self) -> None:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode(errors="replace")
        found = [bad for bad in self.BAD if bad in text]
        assert not found, f"the server logged {found}:\n{text[-3000:]}"
