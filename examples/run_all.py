"""Run every example as `python examples/<name>.py`, the way a user would, and summarize."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = ["github_stars.py", "concurrent_etl.py", "async_flow.py", "handled_failure.py"]


def main() -> int:
    failed = []
    for name in EXAMPLES:
        print(f"\n=== python examples/{name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)]).returncode != 0:
            failed.append(name)
    print("\nAll examples ran." if not failed else f"\nFailed: {', '.join(failed)}")
    print("See the recorded runs with: python manage.py flow-run ls")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
