"""The README's first example: a task with retries called from a flow with log_prints.

No network here: `get_stars` looks the repository up in a small table and fails
once on purpose for one repository, so the retry is visible in the logs.
"""
from sdk import flow, get_run_logger, task

STARS = {"PrefectHQ/prefect": 17000, "django/django": 80000, "celery/celery": 24000}
_first_attempts: set[str] = set()


@task(retries=3, retry_delay_seconds=0.5)
def get_stars(repo: str) -> int:
    if repo == "celery/celery" and repo not in _first_attempts:
        _first_attempts.add(repo)
        raise ConnectionError(f"GitHub API timed out for {repo}")
    return STARS[repo]


@flow(log_prints=True)
def github_stars(repos: list[str]) -> list[int]:
    stars = [get_stars(repo) for repo in repos]
    for repo, count in zip(repos, stars):
        print(f"{repo} has {count} stars")
    get_run_logger().info("Checked %d repositories", len(repos))
    return stars


if __name__ == "__main__":
    print(github_stars(["PrefectHQ/prefect", "django/django", "celery/celery"]))
