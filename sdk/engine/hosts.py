"""Who is running a run: recorded on it so a dead process's runs can be found."""
from __future__ import annotations

import os
import socket
from functools import lru_cache


@lru_cache(maxsize=1)
def hostname() -> str:
    return socket.gethostname()


def process_fields() -> dict[str, object]:
    return {"hostname": hostname(), "pid": os.getpid()}
