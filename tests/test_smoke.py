from sdk import flow, task


@task
def double(x: int) -> int:
    return 2 * x


@flow
def doubles(xs: list[int]) -> list[int]:
    return [double(x) for x in xs]


def test_a_flow_runs_and_returns_its_value():
    assert doubles([1, 2]) == [2, 4]
