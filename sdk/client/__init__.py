"""`get_client()`: the process's orchestration client, chosen by configuration.

With RUNWAY_API_URL unset (the default) the orchestrator runs in this process
against the local database; with it set, every call goes to that server's REST
API with the token in RUNWAY_API_KEY.
"""
from __future__ import annotations

import atexit
import threading

from sdk.client.base import OrchestrationClient

_client: OrchestrationClient | None = None
_lock = threading.Lock()


def get_client() -> OrchestrationClient:
    """The shared client, created on first use; closed when the process exits."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = _make_client()
                atexit.register(close_client)
                from sdk.engine.orphans import crash_orphaned_runs

                crash_orphaned_runs(_client)
    return _client


def _make_client() -> OrchestrationClient:
    from sdk.settings import get_settings

    settings = get_settings()
    if settings.api_url:
        from sdk.client.http import HttpClient

        return HttpClient(settings.api_url, settings.api_key, retry_seconds=settings.api_retry_seconds,
                          timeout=settings.api_timeout)  # fmt: skip
    from sdk.client.inprocess import InProcessClient

    return InProcessClient()


def close_client() -> None:
    """Flush logs and release the client (at exit, or in tests to switch databases)."""
    global _client
    from sdk.logging.handlers import flush_logs, stop_log_worker

    if _client is not None:
        flush_logs()
        stop_log_worker()
        _client.close()
        _client = None


__all__ = ["OrchestrationClient", "get_client", "close_client"]
