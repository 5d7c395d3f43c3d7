"""bench/telemetry/read_cost.py: its paired ratio, and a person's mistakes (one line, exit 2)."""

from __future__ import annotations

import pytest

from bench.telemetry.read_cost import main, paired_ratio


def test_paired_ratio_is_the_geometric_mean_of_rates_with_over_without() -> None:
    # Times: with the telemetry 10 % longer every time → rate 1/1.1 of without's.
    out = paired_ratio([11.0, 22.0, 33.0], [10.0, 20.0, 30.0])
    assert out["ratio"] == pytest.approx(1 / 1.1, abs=1e-4)
    assert out["ci95"][0] == pytest.approx(out["ratio"], abs=1e-4)
    assert out["ci95"][1] == pytest.approx(out["ratio"], abs=1e-4)
    spread = paired_ratio([11.0, 18.0, 30.0], [10.0, 20.0, 30.0])
    assert spread["ci95"][0] < spread["ratio"] < spread["ci95"][1]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--job", "nope"], "unknown workload 'nope'"),
        (["--repeats", "0"], "--repeats must be at least 1"),
        (["--under-tune", "/nonexistent/policy"], "no policy at /nonexistent/policy"),
    ],
)
def test_a_mistake_is_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert says in err[0]
