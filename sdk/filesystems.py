"""Where persisted results live: `LocalFileSystem`, as in Prefect's filesystems module."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


class LocalFileSystem:
    """Files under `basepath` (default: RUNWAY_HOME/storage).

    Writes are atomic (temporary file, then rename) and private (mode 0600), and
    reads refuse paths that escape the base directory.
    """

    def __init__(self, basepath: str | os.PathLike | None = None):
        from sdk.settings import get_settings

        self.basepath = Path(basepath or get_settings().storage_path).expanduser().resolve()

    def _resolve(self, path: str) -> Path:
        full = (self.basepath / path).resolve()
        if self.basepath not in full.parents:
            raise ValueError(f"path {path!r} is outside the storage directory {self.basepath}")
        return full

    def write_path(self, path: str, content: bytes) -> str:
        full = self._resolve(path)
        full.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=full.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.chmod(tmp, 0o600)
            os.replace(tmp, full)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(full)

    def read_path(self, path: str) -> bytes:
        return self._resolve(path).read_bytes()

    def __repr__(self) -> str:
        return f"LocalFileSystem(basepath={str(self.basepath)!r})"
