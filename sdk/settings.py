"""SDK settings, read once from `RUNWAY_*` environment variables (docs/configuration.md)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from orchestrator.env import env_bool, env_float, env_str, runway_home


@dataclass(frozen=True)
class Settings:
    home: Path
    api_url: str  # empty: talk to the orchestrator in process
    api_key: str  # the API token sent with every request to api_url
    api_retry_seconds: float  # how long requests are retried while the server is unreachable or failing
    api_timeout: float  # seconds to wait for one answer
    logging_level: str
    log_flush_interval: float  # seconds between batched log writes
    log_batch_size: int
    task_runner_threads: int  # default ConcurrentTaskRunner pool size
    persist_results: bool  # default for persist_result=None
    heartbeat_seconds: float  # a worker's heartbeat interval for the task runs it runs
    cancel_check_seconds: float  # how often a process running flow runs asks whether they were cancelled
    sweep_seconds: float  # how often a flow looks for its task runs whose worker vanished
    resend_seconds: float  # a run still Pending this long after its message was sent is sent again
    deployment_storage: Path  # where deployed flows' code is copied

    @property
    def storage_path(self) -> Path:
        return self.home / "storage"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process; tests that change the environment call `get_settings.cache_clear()`."""
    return Settings(
        home=runway_home(),
        api_url=env_str("API_URL"),
        api_key=env_str("API_KEY"),
        api_retry_seconds=env_float("API_RETRY_SECONDS", 120.0),
        api_timeout=env_float("API_TIMEOUT", 30.0),
        logging_level=env_str("LOGGING_LEVEL", "INFO").upper(),
        log_flush_interval=env_float("LOG_FLUSH_INTERVAL", 0.5),
        log_batch_size=int(env_float("LOG_BATCH_SIZE", 500)),
        task_runner_threads=int(env_float("TASK_RUNNER_THREADS", 16)),
        persist_results=env_bool("PERSIST_RESULTS", True),
        heartbeat_seconds=env_float("HEARTBEAT_SECONDS", 10.0),
        cancel_check_seconds=env_float("CANCEL_CHECK_SECONDS", 2.0),
        sweep_seconds=env_float("SWEEP_SECONDS", 5.0),
        resend_seconds=env_float("RESEND_SECONDS", 30.0),
        deployment_storage=Path(env_str("DEPLOYMENT_STORAGE") or runway_home() / "deployments"),
    )
