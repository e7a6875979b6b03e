"""An async flow mixing async and sync tasks, with a subflow."""
import asyncio

from sdk import flow, task


@task
async def fetch(page: int) -> str:
    await asyncio.sleep(0.05)
    return f"page-{page}"


@task
def count_chars(pages: list[str]) -> int:
    return sum(len(p) for p in pages)


@flow
def report(total: int) -> str:
    return f"{total} characters fetched"


@flow
async def crawl(pages: int = 5) -> str:
    fetched = await asyncio.gather(*[fetch(p) for p in range(pages)])
    return report(count_chars(fetched))


if __name__ == "__main__":
    print(asyncio.run(crawl()))
