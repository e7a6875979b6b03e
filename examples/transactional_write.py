"""A transaction undoes a file write when the quality check after it fails: no bad file is left behind.

    python examples/transactional_write.py [path]
"""
import sys
import tempfile
from pathlib import Path

from sdk import flow, get_run_logger, task
from sdk.transactions import transaction


@task
def write_file(path: str, contents: str) -> str:
    Path(path).write_text(contents)
    return path


@write_file.on_rollback
def remove_file(txn) -> None:
    path = Path(txn.get("result"))  # the path write_file returned
    path.unlink(missing_ok=True)
    get_run_logger().warning("removed %s", path)


@task
def quality_check(path: str) -> None:
    lines = Path(path).read_text().splitlines()
    if len(lines) < 2:
        raise ValueError(f"{path} has {len(lines)} line(s); at least 2 are needed")


@flow
def publish(path: str, contents: str) -> None:
    with transaction():
        written = write_file(path, contents)
        quality_check(written)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "runway-transaction-example.txt"
    state = publish(str(target), "only one line\n", return_state=True)
    print(f"publish ended {state!r}; {target} exists: {target.exists()}")
    sys.exit(0 if state.is_failed() and not target.exists() else 1)
