"""The guard's rules, interval by interval."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from autotune.config import Settings
from autotune.daemon.guard import Guard, GuardConfig, worse
from autotune.daemon.loop import hold_inert, hold_same
from autotune.envs.model import cores_for
from autotune.knobs import KNOBS

CFG = GuardConfig(warmup=4, dwell=3, canary=3, threshold=0.10, holdoff=10, fallback_window=12)
DEFAULT = np.array([2, 2, 3, 3, 3, 1])  # 1x weights, all CPUs, 128 KiB, prefetch 2
W = {k.name: i for i, k in enumerate(KNOBS)}


def warm(g: Guard, rate: float = 100.0) -> None:
    for _ in range(CFG.warmup):
        v = g.step(rate, DEFAULT + 2)
        assert v.event == "warmup"
        assert np.array_equal(v.levels, DEFAULT)


def test_warmup_keeps_defaults_and_sets_the_reference() -> None:
    g = Guard(DEFAULT, CFG)
    warm(g, 80.0)
    assert g.reference_rate == 80.0


def test_one_step_per_knob_per_interval_and_dwell() -> None:
    g = Guard(DEFAULT, CFG)
    warm(g)
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] = 5  # three steps away
    seen = []
    for _ in range(12):
        v = g.step(100.0, wish)  # progress steady: every change is kept
        seen.append(int(v.levels[W["weight.trainer"]]))
    assert seen[0] == 3
    steps = np.diff([2, *seen])
    assert set(steps) <= {0, 1}  # never more than one step at a time
    changes = [i for i, s in enumerate(steps) if s]
    assert all(b - a >= CFG.dwell for a, b in itertools.pairwise(changes))
    assert seen[-1] == 5


def test_a_bad_change_is_rolled_back_and_held_off() -> None:
    g = Guard(DEFAULT, CFG)
    warm(g)
    wish = DEFAULT.copy()
    wish[W["readahead"]] = 9
    v = g.step(100.0, wish)
    assert v.reasons == {"readahead": "policy"}
    for _ in range(CFG.canary - 1):
        assert g.step(60.0, wish).event == "canary"
    v = g.step(60.0, wish)
    assert v.event == "rollback"
    assert v.levels[W["readahead"]] == DEFAULT[W["readahead"]]
    assert "progress fell" in v.reasons["readahead"]
    for _ in range(CFG.holdoff - 1):  # the same step is refused while held off
        assert g.step(100.0, wish).levels[W["readahead"]] == DEFAULT[W["readahead"]]


EARLY = GuardConfig(
    warmup=4, dwell=3, canary=4, threshold=0.10, holdoff=10, fallback_window=12, early_fall=0.3
)


def _change_then(g: Guard, rates: list[float]) -> list[str]:
    """Warm up, move read-ahead, and feed ``rates`` after the change: the events."""
    for _ in range(EARLY.warmup):
        g.step(100.0 + len(g.warmup_rates) % 2, DEFAULT)  # a little noise: a spread
    wish = DEFAULT.copy()
    wish[RA] = 9
    assert g.step(100.0, wish).reasons == {"readahead": "policy"}
    return [g.step(r, wish).event for r in rates]


def test_a_change_that_costs_half_the_rate_goes_after_half_its_canary() -> None:
    g = Guard(DEFAULT, EARLY)
    events = _change_then(g, [60.0])  # the first interval mixes both settings
    assert events == ["canary"]
    v = g.step(30.0, DEFAULT)
    assert v.event == "rollback" and v.levels[RA] == DEFAULT[RA]
    assert "early: 2 of the canary's 4 intervals" in v.reasons["readahead"]
    assert [i for i, _ in g.held] == [RA]  # the step it took, held off as after any rollback


def test_a_smaller_fall_waits_for_the_whole_canary() -> None:
    g = Guard(DEFAULT, EARLY)
    events = _change_then(g, [80.0, 80.0, 80.0, 80.0])  # 20 %: under early_fall, over threshold
    assert events == ["canary", "canary", "canary", "rollback"]


def test_without_early_fall_a_large_fall_waits_too() -> None:
    g = Guard(DEFAULT, dataclasses.replace(EARLY, early_fall=0.0))
    assert _change_then(g, [30.0] * 4) == ["canary", "canary", "canary", "rollback"]


def test_early_fall_is_a_setting() -> None:
    assert GuardConfig.for_interval(0.5).early_fall == 0.3
    s = Settings.model_validate({"guard_early_fall": 0})
    assert GuardConfig.for_interval(0.5, s).early_fall == 0.0


def test_noise_alone_does_not_roll_back() -> None:
    before = [100.0, 120.0, 80.0, 110.0, 90.0, 100.0, 95.0, 105.0]
    after = [112.0, 72.0, 102.0, 82.0, 92.0, 97.0, 87.0, 92.0]
    assert not worse(before, after, 0.05)  # 8% lower, but well inside the noise
    assert worse([100.0] * 8, [85.0] * 8, 0.10)
    assert not worse([100.0] * 8, [95.0] * 8, 0.10)


def test_falls_back_to_default_when_tuning_loses() -> None:
    cfg = GuardConfig(warmup=4, dwell=1, canary=2, threshold=0.5, holdoff=4, fallback_window=6)
    g = Guard(DEFAULT, cfg)
    for _ in range(cfg.warmup):
        g.step(100.0, DEFAULT)
    wish = DEFAULT.copy()
    wish[W["cpus.trainer"]] = 2
    events = []
    for _ in range(20):
        v = g.step(90.0, wish)  # 10% worse than default: too little to roll back, enough to lose
        events.append(v.event)
        if v.event == "fallback":
            assert np.array_equal(v.levels, DEFAULT)
            assert "fallback to default" in next(iter(v.reasons.values()))
            break
    assert "fallback" in events


def test_a_new_progress_unit_restarts_from_the_defaults() -> None:
    g = Guard(DEFAULT, CFG)
    for _ in range(CFG.warmup):
        g.step(1.0, DEFAULT, "proxy")  # the job's start-up: trainer CPU seconds per second
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] += 1
    v = g.step(1.0, wish, "proxy")
    assert v.reasons == {"weight.trainer": "policy"}
    v = g.step(400.0, wish, "client")  # the job reports samples from now on
    assert v.event == "restart"
    assert np.array_equal(v.levels, DEFAULT)
    assert "sample count" in v.reasons["weight.trainer"]
    for _ in range(CFG.warmup - 1):
        assert g.step(400.0, wish, "client").event == "warmup"
    assert g.reference_rate == 400.0  # in samples/s only
    assert g.step(400.0, wish, "client").reasons == {"weight.trainer": "policy"}


KEEP = dataclasses.replace(CFG, keep_on_restart=True)


def _tuned_in_proxy(g: Guard, wish: np.ndarray, canary_intervals: int) -> None:
    """Warm-up in the proxy unit, the wish applied, ``canary_intervals`` of its canary run."""
    g.seed([1.0] * CFG.warmup, "proxy")  # the /proc rates while the telemetry compiled
    assert set(g.step(1.0, wish, "proxy").reasons) == set(_moved(wish))
    for _ in range(canary_intervals):
        g.step(1.2, wish, "proxy")


def test_seeded_rates_are_the_warm_up_and_the_first_wish_acts() -> None:
    g = Guard(DEFAULT, CFG)
    g.seed([1.0] * CFG.warmup, "proxy")
    assert g.reference_rate == 1.0 and g.source == "proxy"
    assert np.array_equal(g.levels, DEFAULT)  # seeding never moves a knob
    assert g.step(1.0, DEFAULT + 2, "proxy").reasons  # the first step tunes


def _moved(levels: np.ndarray) -> list[str]:
    return [KNOBS[i].name for i in np.flatnonzero(levels != DEFAULT)]


def test_keep_on_restart_keeps_the_passed_weights_and_owes_the_new_warm_up() -> None:
    g = Guard(DEFAULT, KEEP)
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] += 1
    wish[W["cpus.trainer"]] -= 1
    _tuned_in_proxy(g, wish, CFG.canary)  # its canary passed
    v = g.step(400.0, wish, "client")
    # The weights stay; the cores (set while the job started) go back to default.
    assert v.event == "restart" and _moved(v.levels) == ["weight.trainer"]
    assert list(v.reasons) == ["cpus.trainer"] and "weights stay" in v.reasons["cpus.trainer"]
    wish[W["cpus.trainer"]] += 1
    assert g.reference_rate == 0.0 and g.owed == CFG.warmup and not g.warming_up
    # No change before a canary window of the new unit's rates; then the policy goes on.
    more = wish.copy()
    more[W["weight.loader"]] += 1
    seen = [g.step(400.0, more, "client") for _ in range(CFG.canary)]
    assert [bool(v.reasons) for v in seen] == [False] * (CFG.canary - 1) + [True]
    # The owed warm-up runs at default knobs once the job has run tuned a fallback window.
    events = [g.step(400.0, more, "client").event for _ in range(CFG.fallback_window)]
    assert "reference" in events


def test_keep_on_restart_judges_a_running_canary_on_what_it_saw() -> None:
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] += 1
    g = Guard(DEFAULT, KEEP)
    _tuned_in_proxy(g, wish, 2)  # two of three intervals, no fall: kept
    assert np.array_equal(g.step(400.0, wish, "client").levels, wish)
    g = Guard(DEFAULT, KEEP)
    cores = DEFAULT.copy()
    cores[W["cpus.trainer"]] -= 1
    g.seed([1.0] * CFG.warmup, "proxy")
    g.step(1.0, cores, "proxy")
    for _ in range(CFG.canary):
        g.step(1.0, cores, "proxy")
    v = g.step(400.0, cores, "client")  # no weight to keep: default knobs, the warm-up again
    assert np.array_equal(v.levels, DEFAULT) and "warm-up again" in v.reasons["cpus.trainer"]
    g = Guard(DEFAULT, KEEP)
    _tuned_in_proxy(g, wish, 1)  # one interval (it mixes both settings): not enough
    assert np.array_equal(g.step(400.0, wish, "client").levels, DEFAULT)
    g = Guard(DEFAULT, KEEP)
    g.seed([1.0] * CFG.warmup, "proxy")
    g.step(1.0, wish, "proxy")
    g.step(0.5, wish, "proxy")
    g.step(0.5, wish, "proxy")  # a fall of half: back to default, the warm-up again
    v = g.step(400.0, wish, "client")
    assert np.array_equal(v.levels, DEFAULT) and "warm-up again" in v.reasons["weight.trainer"]


def test_a_start_off_default_owes_the_warm_up_and_keeps_through_a_restart() -> None:
    cfg = dataclasses.replace(KEEP, fast_retreat=True)
    start = DEFAULT.copy()
    start[W["weight.trainer"]] = start[W["weight.loader"]] = 5  # 8x, set as the job started
    g = Guard(DEFAULT, cfg)
    g.start_at(start)
    g.seed([1.1], "proxy")  # the /proc rate while the telemetry compiled: a tuned one
    assert np.array_equal(g.levels, start) and g.warmup_rates == [] and not g.warming_up
    assert g.owed == cfg.warmup and g.reference_rate == 0.0
    # The policy's first step away waits for a canary window of rates at the start (three:
    # the seeded one and two more), to be judged against them.
    split = start.copy()
    split[W["cpus.trainer"]] -= 1
    assert cfg.canary == 3
    seen = [g.step(1.0, split, "proxy") for _ in range(3)]
    assert [bool(v.reasons) for v in seen] == [False, True, False]
    assert seen[1].reasons == {"cpus.trainer": "policy"}
    assert g.canary is not None and g.canary.baseline == [1.1, 1.0, 1.0]
    for _ in range(cfg.canary):
        g.step(1.0, split, "proxy")  # its canary passes
    # The job's own progress begins: the weights stay, the rest goes back to default.
    v = g.step(400.0, split, "client")
    assert v.event == "restart" and _moved(v.levels) == ["weight.trainer", "weight.loader"]
    # A wish back to default weights goes in at once (fast retreat), as from any setting.
    v = g.step(400.0, DEFAULT, "client")
    assert np.array_equal(v.levels, DEFAULT) and set(v.reasons) == {
        "weight.trainer",
        "weight.loader",
    }


def test_a_restart_during_a_young_canary_keeps_the_weights_from_before_the_change() -> None:
    start = DEFAULT.copy()
    start[W["weight.trainer"]] = start[W["weight.loader"]] = 5
    g = Guard(DEFAULT, KEEP)
    g.start_at(start)
    wish = start.copy()
    wish[W["weight.loader"]] = 3  # 2x, and the trainer alone on fewer CPUs
    wish[W["cpus.trainer"]] -= 1
    while not g.step(1.0, wish, "proxy").reasons:  # the policy's first change
        pass
    v = g.step(400.0, wish, "client")  # the job's own samples, one interval later
    # The change is dropped unjudged; the start's weights, its baseline, stay.
    assert v.event == "restart" and np.array_equal(v.levels, start)
    assert v.reasons == {
        "weight.loader": "progress now measured by the job's own sample count: default knobs; "
        "the weights from before the change being judged stay",
        "cpus.trainer": "progress now measured by the job's own sample count: default knobs; "
        "the weights from before the change being judged stay",
    }
    assert g.owed == KEEP.warmup and not g.warming_up


def test_a_start_at_default_is_the_plain_warm_up() -> None:
    g = Guard(DEFAULT, CFG)
    g.start_at(DEFAULT)
    warm(g, 80.0)
    assert g.reference_rate == 80.0 and g.owed == 0


def test_a_start_off_default_runs_the_owed_warm_up_after_a_window() -> None:
    start = DEFAULT.copy()
    start[W["weight.trainer"]] = 5
    g = Guard(DEFAULT, DEFER)
    g.start_at(start)
    events = [g.step(200.0, start).event for _ in range(DEFER.fallback_window)]
    assert events[-1] == "reference" and "reference" not in events[:-1]
    assert np.array_equal(g.levels, DEFAULT)


def test_keep_on_restart_is_on_by_default_and_a_setting() -> None:
    assert GuardConfig.for_interval(0.5).keep_on_restart
    off = Settings.model_validate({"guard_keep_on_restart": False})
    assert not GuardConfig.for_interval(0.5, off).keep_on_restart


def _tuned_until_fallback(g: Guard, rates: list[float]) -> int | None:
    """Feed ``rates`` with a wish off the defaults; the interval of the fallback, if any."""
    wish = DEFAULT.copy()
    wish[W["readahead"]] = 0
    for i, r in enumerate(rates):
        if g.step(r, wish).event == "fallback":
            return i
    return None


def test_a_clear_loss_falls_back_before_the_long_window() -> None:
    cfg = GuardConfig(warmup=8, dwell=1, canary=2, threshold=0.5, holdoff=4, fallback_window=40)
    g = Guard(DEFAULT, cfg)
    for r in [100.0, 104.0, 96.0, 101.0, 99.0, 103.0, 97.0, 100.0]:
        g.step(r, DEFAULT)
    # Each step too small to roll back (threshold 50 %), together 15 % down, noise ±4 %.
    at = _tuned_until_fallback(g, [85.0 + (4.0 if i % 2 else -4.0) for i in range(40)])
    assert at is not None and at < cfg.fallback_window // 2


def test_a_loss_within_the_noise_waits_for_the_long_window() -> None:
    cfg = GuardConfig(warmup=8, dwell=1, canary=2, threshold=0.5, holdoff=4, fallback_window=40)
    g = Guard(DEFAULT, cfg)
    for r in [100.0, 160.0, 40.0, 130.0, 70.0, 150.0, 50.0, 100.0]:  # a bursty job
        g.step(r, DEFAULT)
    at = _tuned_until_fallback(g, [90.0 + (50.0 if i % 2 else -50.0) for i in range(60)])
    assert at is not None and at >= cfg.fallback_window - 1  # only on the whole window's mean


def test_a_reading_job_on_a_quiet_node_gets_no_extra_weight() -> None:
    # Reading 500 MB/s while other tasks want 10% of the CPUs: the policy's 8x is refused,
    # read-ahead still moves. A neighbour wanting the whole node: the weight climbs.
    g = Guard(DEFAULT, CFG)
    warm(g)
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] = 5
    wish[W["readahead"]] = 4
    v = g.step(100.0, wish, contention=0.1, read_mbps=500.0)
    assert v.levels[W["weight.trainer"]] == DEFAULT[W["weight.trainer"]]
    assert v.reasons == {"readahead": "policy"}
    for _ in range(2 * CFG.canary):
        g.step(100.0, wish, contention=1.0, read_mbps=500.0)
    assert g.levels[W["weight.trainer"]] > DEFAULT[W["weight.trainer"]]


def test_a_job_that_reads_little_may_weigh_more_on_a_quiet_node() -> None:
    g = Guard(DEFAULT, CFG)
    warm(g)
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] = 5
    v = g.step(100.0, wish, contention=0.05, read_mbps=30.0)
    assert v.levels[W["weight.trainer"]] == DEFAULT[W["weight.trainer"]] + 1


def test_weights_step_back_down_when_the_neighbour_leaves() -> None:
    g = Guard(DEFAULT, CFG)
    warm(g)
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] = 5
    for _ in range(4 * CFG.dwell):
        g.step(100.0, wish, contention=1.0, read_mbps=500.0)
    high = int(g.levels[W["weight.trainer"]])
    assert high > DEFAULT[W["weight.trainer"]]
    reasons = []
    for _ in range(8 * CFG.dwell):
        v = g.step(100.0, wish, contention=0.05, read_mbps=500.0)
        reasons += [r for k, r in v.reasons.items() if k == "weight.trainer"]
    assert g.levels[W["weight.trainer"]] == DEFAULT[W["weight.trainer"]]
    assert reasons and all(r.startswith("no contention: other tasks want") for r in reasons)
    assert "want 5% of the CPUs (under 50%) while the job reads 500 MB/s" in reasons[-1]


def test_lighter_weights_need_no_contention() -> None:
    g = Guard(DEFAULT, CFG)
    warm(g)
    wish = DEFAULT.copy()
    wish[W["weight.loader"]] = 0
    g.step(100.0, wish, contention=0.0, read_mbps=500.0)
    assert g.levels[W["weight.loader"]] == DEFAULT[W["weight.loader"]] - 1


# --- the warm-up ends when the reference rate is known well enough --------------------------------

ADAPTIVE = GuardConfig(warmup=10, warmup_min=3, dwell=1, canary=2, fallback_margin=0.05)


def _warmup_length(g: Guard, rates: list[float]) -> int:
    """How many intervals run as warm-up when the job makes ``rates`` (then steady at 100)."""
    n = 0
    for rate in itertools.chain(rates, itertools.repeat(100.0)):
        if g.step(rate, DEFAULT + 1).event != "warmup":
            return n
        n += 1
        assert n <= 100
    return n


def test_a_steady_job_warms_up_for_the_floor_only() -> None:
    g = Guard(DEFAULT, ADAPTIVE)
    assert _warmup_length(g, [100.0, 101.0, 99.0, 100.0]) == ADAPTIVE.warmup_min
    assert not g.warming_up
    assert g.reference_rate == 100.0


def test_a_noisy_job_warms_up_until_its_mean_is_tight_or_the_ceiling() -> None:
    # ±30 % alternating: the interval of the mean stays wider than 5 % until the ceiling.
    g = Guard(DEFAULT, ADAPTIVE)
    assert _warmup_length(g, [70.0, 130.0] * 10) == ADAPTIVE.warmup
    # ±4 %: tight enough after a few more than the floor, before the ceiling.
    g = Guard(DEFAULT, ADAPTIVE)
    n = _warmup_length(g, [96.0, 104.0] * 10)
    assert ADAPTIVE.warmup_min < n < ADAPTIVE.warmup


def test_without_a_floor_the_warmup_is_fixed() -> None:
    g = Guard(DEFAULT, GuardConfig(warmup=6))
    assert _warmup_length(g, [100.0] * 10) == 6


def test_the_settings_give_a_floor_and_a_ceiling() -> None:
    cfg = GuardConfig.for_interval(0.5)
    assert (cfg.warmup_min, cfg.warmup) == (3, 10)  # 1 s but three rates at least; 5 s


def test_a_jump_of_several_rungs_is_one_change_judged_by_one_canary() -> None:
    cfg = GuardConfig(warmup=4, dwell=3, canary=3, holdoff=10, fallback_window=12, max_rungs=3)
    g = Guard(DEFAULT, cfg)
    warm(g)
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] = DEFAULT[W["weight.trainer"]] + 5  # five rungs away
    v = g.step(100.0, wish)
    assert v.levels[W["weight.trainer"]] == DEFAULT[W["weight.trainer"]] + 3 and v.reasons
    for _ in range(cfg.canary):
        v = g.step(50.0, wish)  # the jump halves progress: rolled back as one change
    assert v.event == "rollback"
    assert v.levels[W["weight.trainer"]] == DEFAULT[W["weight.trainer"]]
    assert g.held == {(W["weight.trainer"], int(DEFAULT[W["weight.trainer"]] + 3)): g.t + 10}


DEFER = GuardConfig(
    warmup=10, warmup_min=3, dwell=1, canary=2, fallback_window=6, defer_warmup=True, max_rungs=3
)


def test_a_noisy_job_tunes_after_the_floor_and_owes_the_rest_of_its_warm_up() -> None:
    g = Guard(DEFAULT, DEFER)
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] += 2
    noisy = iter([70.0, 130.0, 70.0])
    events = [g.step(next(noisy), wish).event for _ in range(3)]
    assert events == ["warmup"] * 3
    v = g.step(200.0, wish)  # the fourth interval: tuned already
    assert v.reasons and not g.warming_up and g.owed == DEFER.warmup - 3
    tuned = v.levels.copy()
    for _ in range(DEFER.fallback_window - 1):
        v = g.step(200.0, wish)
        assert v.event != "reference"
    # Tuned for the whole window: the intervals owed run now, at default knobs.
    v = g.step(200.0, wish)
    assert v.event == "reference" and np.array_equal(v.levels, DEFAULT)
    assert "rest of the warm-up" in v.reasons["weight.trainer"]
    seen = [g.step(r, wish) for r in [150.0] + [100.0, 102.0] * 20]
    events = [s.event for s in seen]
    first_resume = events.index("resume")
    assert all(e == "reference" for e in events[:first_resume])
    assert all(np.array_equal(s.levels, DEFAULT) for s in seen[:first_resume])
    assert g.warming_up is False and g.owed == 0
    assert np.array_equal(seen[first_resume].levels, tuned)  # back where it was, at once
    # Not counted: the first interval after the switch (150, both settings' rates mixed).
    assert 150.0 not in g.warmup_rates and g.warmup_rates[:3] == [70.0, 130.0, 70.0]
    assert first_resume <= DEFER.warmup - 3 + 1
    assert "reference" not in events[first_resume:]  # owed once, paid once


def test_a_steady_job_owes_nothing() -> None:
    g = Guard(DEFAULT, DEFER)
    wish = DEFAULT + 1
    events = [g.step(100.0, wish).event for _ in range(40)]
    assert g.owed == 0 and "reference" not in events
    assert events[:3] == ["warmup"] * 3 and events[3] == ""


def test_a_job_shorter_than_the_window_never_pays_what_it_owes() -> None:
    g = Guard(DEFAULT, DEFER)
    wish = DEFAULT + 1
    for r in [70.0, 130.0, 70.0] + [200.0] * (DEFER.fallback_window - 1):
        v = g.step(r, wish)
        assert v.event != "reference"
    assert g.owed > 0  # the job ends here: every interval after the floor ran tuned


def test_deferral_and_jumps_are_on_by_default_and_settings() -> None:
    # On since bench/online measured them (docs/online-tuning.md): the tuner's fixed cost.
    cfg = GuardConfig.for_interval(0.5)
    assert cfg.defer_warmup and cfg.max_rungs == 3
    off = Settings.model_validate({"guard_warmup_defer": False, "guard_max_rungs": 1})
    cfg = GuardConfig.for_interval(0.5, off)
    assert not cfg.defer_warmup and cfg.max_rungs == 1


def test_inert_knobs_are_held_where_they_are_and_the_rest_go_as_wished() -> None:
    names = [k.name for k in KNOBS]
    current = np.zeros(len(KNOBS), dtype=np.int64)
    wish = np.arange(1, len(KNOBS) + 1, dtype=np.int64)
    held = hold_inert(wish, current, {"readahead": "no block device found yet"})
    for i, name in enumerate(names):
        assert held[i] == (current[i] if name == "readahead" else wish[i])
    assert list(wish) == list(range(1, len(KNOBS) + 1))  # the policy's array is left alone
    assert hold_inert(wish, current, {}) is wish


def test_a_wish_that_sets_the_same_thing_as_the_level_in_effect_is_no_change() -> None:
    # On 2 CPUs, trainer shares 0.25 and 0.5 are one CPU each, 0.75 and 1 both CPUs.
    def two_cpus(knob: str, a: float, b: float) -> bool:
        return cores_for(a, 2) == cores_for(b, 2) if knob.startswith("cpus.") else a == b

    levels = DEFAULT.copy()
    levels[W["cpus.trainer"]] = 0  # 0.25
    wish = levels.copy()
    wish[W["cpus.trainer"]] = 1  # 0.5: the same CPU
    wish[W["cpus.loader"]] = 2  # 0.75 from 1.0: both CPUs
    wish[RA] += 1  # a real change
    held = hold_same(wish, levels, two_cpus)
    assert held[W["cpus.trainer"]] == 0 and held[W["cpus.loader"]] == levels[W["cpus.loader"]]
    assert held[RA] == wish[RA]
    assert wish[W["cpus.trainer"]] == 1  # the policy's array is left alone


def test_a_deferred_warm_up_lasts_a_canary_window_at_least() -> None:
    cfg = GuardConfig(warmup=10, warmup_min=2, dwell=1, canary=5, defer_warmup=True)
    g = Guard(DEFAULT, cfg)
    wish = DEFAULT + 1
    events = [g.step(r, wish).event for r in [70.0, 130.0, 70.0, 130.0, 70.0, 130.0]]
    # Noisy, so the warm-up is deferred; but not before the first canary has its 5 rates.
    assert events == ["warmup"] * 5 + [""]
    assert g.canary is not None and len(g.canary.baseline) == cfg.canary


def test_one_family_per_change_judges_each_family_by_its_own_canary() -> None:
    cfg = GuardConfig(warmup=4, dwell=1, canary=3, holdoff=10, fallback_window=40, max_rungs=3)
    g = Guard(DEFAULT, dataclasses.replace(cfg, one_family=True))
    warm(g)
    wish = DEFAULT.copy()
    for name in ("weight.trainer", "weight.loader", "cpus.trainer", "readahead"):
        wish[W[name]] -= 1 if name.startswith("cpus") else -1
    v = g.step(100.0, wish)  # weights first, both of them: one family, one change
    assert set(v.reasons) == {"weight.trainer", "weight.loader"}
    for _ in range(cfg.canary - 1):
        assert g.step(300.0, wish).event == "canary"  # the weights triple the rate
    v = g.step(300.0, wish)  # passed: the cores' turn
    assert set(v.reasons) == {"cpus.trainer"}
    for _ in range(cfg.canary):
        v = g.step(200.0, wish)  # the split loses a third: still twice the default rate
    assert v.event == "rollback" and set(v.reasons) == {"cpus.trainer"}
    assert v.levels[W["cpus.trainer"]] == DEFAULT[W["cpus.trainer"]]
    assert v.levels[W["weight.trainer"]] == wish[W["weight.trainer"]]  # the weights stay
    v = g.step(300.0, wish)  # the split is held off; read-ahead goes next, alone
    assert set(v.reasons) == {"readahead"}


def test_without_one_family_the_gain_of_one_hides_the_loss_of_another() -> None:
    cfg = GuardConfig(warmup=4, dwell=1, canary=3, holdoff=10, fallback_window=40, max_rungs=3)
    g = Guard(DEFAULT, cfg)
    warm(g)
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] += 1
    wish[W["cpus.trainer"]] -= 1
    v = g.step(100.0, wish)
    assert set(v.reasons) == {"weight.trainer", "cpus.trainer"}
    events = [g.step(200.0, wish).event for _ in range(cfg.canary)]
    assert "rollback" not in events  # 2x the rate before it: kept, split and all


def test_one_family_is_a_setting() -> None:
    assert not GuardConfig.for_interval(0.5).one_family
    on = Settings.model_validate({"guard_one_family": True})
    assert GuardConfig.for_interval(0.5, on).one_family


def test_one_family_takes_the_families_in_turn() -> None:
    cfg = GuardConfig(warmup=4, dwell=1, canary=2, holdoff=10, fallback_window=40, one_family=True)
    g = Guard(DEFAULT, cfg)
    warm(g)
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] += 1
    wish[W["prefetch.loader"]] += 1
    assert set(g.step(100.0, wish).reasons) == {"weight.trainer"}
    g.step(100.0, wish)
    wish[W["weight.loader"]] += 1  # the policy retunes its weights: prefetch has waited longer
    assert set(g.step(100.0, wish).reasons) == {"prefetch.loader"}
    g.step(100.0, wish)
    assert set(g.step(100.0, wish).reasons) == {"weight.loader"}


PROBE = GuardConfig(
    warmup=4, dwell=1, canary=3, holdoff=10, fallback_window=40, max_rungs=3, probe_families=True
)


def _combined_change(g: Guard, rate: float) -> np.ndarray:
    """Warm up at 100/s, then a wish moving weights, cores and read-ahead in one change that
    runs at ``rate`` and passes its canary."""
    warm(g)
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] += 2
    wish[W["cpus.trainer"]] -= 1
    wish[W["readahead"]] += 1
    v = g.step(100.0, wish)
    assert set(v.reasons) == {"weight.trainer", "cpus.trainer", "readahead"}  # all at once
    for _ in range(PROBE.canary):
        g.step(rate, wish)
    return wish


def test_a_family_that_does_not_earn_its_place_is_kept_out() -> None:
    g = Guard(DEFAULT, PROBE)
    wish = _combined_change(g, 300.0)
    assert g.canary is not None and g.canary.probe  # the cores first (the table's order)
    assert g.levels[W["cpus.trainer"]] == DEFAULT[W["cpus.trainer"]]
    assert g.levels[W["weight.trainer"]] == wish[W["weight.trainer"]]  # weights never probed
    for _ in range(PROBE.canary):
        v = g.step(450.0, wish)  # faster without the split
    assert v.event == "probe" and set(v.reasons) == {"readahead"}  # kept out; read-ahead next
    assert "probe:" in v.reasons["readahead"]
    assert g.levels[W["cpus.trainer"]] == DEFAULT[W["cpus.trainer"]]
    for _ in range(PROBE.canary):
        v = g.step(320.0, wish)  # without the read-ahead: no clear gain (320 against 300)
    assert v.event == "probe" and "no clear gain; back" in v.reasons["readahead"]
    assert v.levels[W["readahead"]] == wish[W["readahead"]]
    assert (W["readahead"], int(wish[W["readahead"]])) not in g.held
    until = g.held[(W["cpus.trainer"], int(wish[W["cpus.trainer"]]))]
    while g.t + 1 < until:  # the split stays out while it is held off, then comes back alone
        assert g.step(450.0, wish).levels[W["cpus.trainer"]] == DEFAULT[W["cpus.trainer"]]
    v = g.step(450.0, wish)
    assert set(v.reasons) == {"cpus.trainer"} and v.event == ""


def test_a_change_of_one_family_is_not_probed() -> None:
    g = Guard(DEFAULT, PROBE)
    warm(g)
    wish = DEFAULT.copy()
    wish[W["cpus.trainer"]] -= 1
    wish[W["cpus.loader"]] -= 1
    g.step(100.0, wish)
    for _ in range(PROBE.canary):
        v = g.step(150.0, wish)
    assert v.event == "" and g.canary is None and not g._probes


def test_probing_is_a_setting() -> None:
    assert not GuardConfig.for_interval(0.5).probe_families
    on = Settings.model_validate({"guard_probe_families": True})
    assert GuardConfig.for_interval(0.5, on).probe_families


RETREAT = dataclasses.replace(CFG, max_rungs=3, fast_retreat=True)
RA = W["readahead"]


def _up(g: Guard, rungs: int, rate: float = 100.0) -> None:
    """Read-ahead ``rungs`` above default, every change past its canary."""
    wish = DEFAULT.copy()
    wish[RA] += rungs
    while g.levels[RA] != wish[RA]:
        g.step(rate, wish)
    while g.canary is not None:
        g.step(rate, wish)


def test_a_wish_back_toward_default_goes_in_at_once_and_whole() -> None:
    """mixed_io's read-ahead: up over two changes for a sequential spell, and back down in one
    interval when the random spell comes, whatever the rung limit and the dwell say."""
    g = Guard(DEFAULT, RETREAT)
    warm(g)
    _up(g, 5)  # 128 KiB → 4 MiB: two changes of at most three rungs
    wish = DEFAULT.copy()
    wish[RA] -= 1  # 64 KiB: past the default, so only the way back to it is a retreat...
    v = g.step(100.0, wish)
    assert v.levels[RA] == DEFAULT[RA]  # ...five rungs in one interval; the rest waits the dwell
    assert v.reasons == {"readahead": "policy, back toward default (not rate-limited)"}
    assert g.canary is None
    v = g.step(100.0, wish)
    assert v.levels[RA] == DEFAULT[RA] and not v.reasons  # the step away waits its dwell
    for _ in range(RETREAT.dwell - 1):
        v = g.step(100.0, wish)
    assert v.levels[RA] == DEFAULT[RA] - 1 and v.reasons == {"readahead": "policy"}


def test_a_retreat_while_a_change_is_judged_leaves_the_rest_of_it_judged_again() -> None:
    g = Guard(DEFAULT, RETREAT)
    warm(g)
    _up(g, 2)  # read-ahead two rungs up, passed
    wish = DEFAULT.copy()
    wish[RA] += 2
    wish[W["weight.trainer"]] += 3
    g.step(100.0, wish)  # weights up: the canary runs
    assert (
        g.canary is not None and g.levels[W["weight.trainer"]] == DEFAULT[W["weight.trainer"]] + 3
    )
    wish[RA] = DEFAULT[RA] + 1  # read-ahead back one rung, weights kept, mid-canary
    v = g.step(100.0, wish)
    assert v.levels[RA] == DEFAULT[RA] + 1 and v.event == ""
    assert g.canary is not None and g.canary.start == g.t
    baseline = list(g.canary.baseline)
    for _ in range(RETREAT.canary - 1):
        assert g.step(50.0, wish).event == "canary"
    assert g.canary.baseline == baseline  # judged against the rates from before the change
    v = g.step(50.0, wish)  # what is left of the change halves progress: undone
    assert v.event == "rollback"
    assert v.levels[W["weight.trainer"]] == DEFAULT[W["weight.trainer"]]
    assert v.levels[RA] == DEFAULT[RA] + 1  # the step back stays: not up again to +2
    assert set(v.reasons) == {"weight.trainer"}


def test_a_retreat_that_undoes_the_change_being_judged_ends_its_canary() -> None:
    g = Guard(DEFAULT, RETREAT)
    warm(g)
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] += 3
    g.step(100.0, wish)
    assert g.canary is not None
    v = g.step(100.0, DEFAULT)
    assert np.array_equal(v.levels, DEFAULT) and g.canary is None and g.held == {}


def test_without_fast_retreat_a_change_being_judged_holds_every_knob() -> None:
    g = Guard(DEFAULT, dataclasses.replace(RETREAT, fast_retreat=False))
    warm(g)
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] += 3
    g.step(100.0, wish)
    v = g.step(100.0, DEFAULT)
    assert v.event == "canary" and v.levels[W["weight.trainer"]] == DEFAULT[W["weight.trainer"]] + 3


def test_a_retreat_to_a_setting_held_off_is_refused() -> None:
    g = Guard(DEFAULT, RETREAT)
    warm(g)
    _up(g, 4)
    g.held[(RA, int(DEFAULT[RA] + 2))] = g.t + 100
    wish = DEFAULT.copy()
    wish[RA] += 2
    assert g.step(100.0, wish).levels[RA] == DEFAULT[RA] + 4


RETURN = dataclasses.replace(RETREAT, fast_return=True)
FAST_RETURN = "policy, back to a setting its canary passed (fast return)"


def _spells(g: Guard, wish_seq: np.ndarray, wish_random: np.ndarray) -> None:
    """mixed_io's read-ahead: up in a streaming spell, past default in a random one, each
    change through its whole canary window."""
    for wish in (wish_seq, wish_random):
        while g.levels[RA] != wish[RA] or g.canary is not None:
            g.step(100.0, wish)


def test_a_wish_back_to_a_level_a_canary_passed_goes_in_at_once() -> None:
    """After one streaming spell and one random spell, each read-ahead judged once, the next
    spells switch in one interval each, whatever the dwell and the rung limit say."""
    g = Guard(DEFAULT, RETURN)
    warm(g)
    seq, rnd = DEFAULT.copy(), DEFAULT.copy()
    seq[RA] += 3  # 1 MiB
    rnd[RA] -= 2  # 32 KiB
    _spells(g, seq, rnd)
    assert {(RA, int(seq[RA])), (RA, int(rnd[RA]))} <= g.vetted
    for wish in (seq, rnd, seq):
        v = g.step(100.0, wish)
        assert v.levels[RA] == wish[RA]  # five rungs, right after the last change
        assert v.reasons == {
            "readahead": "policy, back to a setting its canary passed (fast return)"
        }
        assert g.canary is None


def test_without_fast_return_each_spell_waits_for_its_rungs_and_canaries() -> None:
    g = Guard(DEFAULT, RETREAT)
    warm(g)
    seq, rnd = DEFAULT.copy(), DEFAULT.copy()
    seq[RA] += 3
    rnd[RA] -= 2
    _spells(g, seq, rnd)
    assert g.step(100.0, seq).levels[RA] == DEFAULT[RA]  # back to default only, at once


def test_a_rollback_takes_a_level_off_the_vetted_ones() -> None:
    # A level vetted with one setting of the other knobs, then part of a change that halves
    # progress: rolled back, held off, and no longer returned to at once.
    g = Guard(DEFAULT, RETURN)
    warm(g)
    seq = DEFAULT.copy()
    seq[RA] += 3
    _spells(g, seq, DEFAULT.copy())
    assert (RA, int(seq[RA])) in g.vetted
    g.step(100.0, DEFAULT)  # at default; its rates are the next change's baseline
    for _ in range(RETURN.canary):
        g.step(100.0, DEFAULT)
    both = seq.copy()
    both[W["weight.trainer"]] += 3
    v = g.step(100.0, both)  # the read-ahead by fast return, the weight by the rate limit
    assert v.levels[RA] == seq[RA] and v.levels[W["weight.trainer"]] == both[W["weight.trainer"]]
    events = [g.step(40.0, both).event for _ in range(RETURN.canary)]
    assert events[-1] == "rollback"
    assert (W["weight.trainer"], int(both[W["weight.trainer"]])) in g.held
    assert (W["weight.trainer"], int(both[W["weight.trainer"]])) not in g.vetted


def test_a_fallback_forgets_every_vetted_level() -> None:
    g = Guard(DEFAULT, RETURN)
    warm(g)
    seq = DEFAULT.copy()
    seq[RA] += 3
    _spells(g, seq, seq)
    assert g.vetted
    while g.step(10.0, seq).event != "fallback":
        pass
    assert g.vetted == set() and np.array_equal(g.levels, DEFAULT)


def test_fast_return_is_a_setting_on_by_default() -> None:
    assert GuardConfig.for_interval(0.5).fast_return
    off = Settings.model_validate({"guard_fast_return": False})
    assert not GuardConfig.for_interval(0.5, off).fast_return


STEADY = dataclasses.replace(EARLY, early_fall=0.0, steady_baseline=True)


def _change_after_a_rollback(g: Guard) -> list[str]:
    """Warm up at 100/s, roll back a read-ahead change that halves the rate, then at once a
    trainer weight that costs 40 %: the events of the weight's canary window."""
    wish = DEFAULT.copy()
    wish[RA] = 9
    events = _change_then(g, [55.0, 50.0, 50.0, 50.0])
    assert events[-1] == "rollback"
    wish[W["weight.trainer"]] += 1  # read-ahead held off: the weight is the next change
    v = g.step(75.0, wish)  # mixes the rolled-back setting and the one before
    assert v.reasons == {"weight.trainer": "policy"}
    return [g.step(60.0, wish).event for _ in range(STEADY.canary)]


def test_a_change_after_a_rollback_is_judged_against_the_setting_in_effect() -> None:
    # Its baseline is what the rolled-back change was judged against (100/s), not the last
    # intervals, which ran the rolled-back setting (50/s): 60/s is a fall, rolled back.
    g = Guard(DEFAULT, STEADY)
    assert _change_after_a_rollback(g)[-1] == "rollback"


def test_without_the_steady_baseline_the_rolled_back_rates_hide_the_fall() -> None:
    g = Guard(DEFAULT, dataclasses.replace(STEADY, steady_baseline=False))
    assert "rollback" not in _change_after_a_rollback(g)


def test_a_change_is_judged_without_the_interval_that_mixes_two_settings() -> None:
    # The next change's baseline is the passed setting's own rates: the first interval after
    # it (a slow 20/s, mixing it with the setting before) is not among them.
    g = Guard(DEFAULT, STEADY)
    assert _change_then(g, [20.0, 100.0, 100.0]) == ["canary"] * 3
    wish = DEFAULT.copy()
    wish[RA] = 9
    assert g.step(100.0, wish).reasons == {"readahead": "policy"}  # passed; the next rung
    assert g.canary is not None and g.canary.steady
    assert g.canary.baseline == [100.0] * 3


def test_the_steady_baseline_is_a_setting() -> None:
    assert GuardConfig.for_interval(0.5).steady_baseline
    s = Settings.model_validate({"guard_steady_baseline": False})
    assert not GuardConfig.for_interval(0.5, s).steady_baseline


HOLD = dataclasses.replace(KEEP, startup_hold=8)


def test_the_startup_hold_moves_only_weights_until_the_job_reports() -> None:
    g = Guard(DEFAULT, HOLD)
    g.seed([1.0] * CFG.warmup, "proxy")
    wish = DEFAULT.copy()
    wish[W["weight.trainer"]] += 1
    wish[W["cpus.trainer"]] -= 1
    wish[W["readahead"]] += 2
    v = g.step(1.0, wish, "proxy")
    assert list(v.reasons) == ["weight.trainer"]  # the cores and read-ahead wait
    for _ in range(CFG.canary):
        v = g.step(1.0, wish, "proxy")
        assert _moved(v.levels) == ["weight.trainer"]
    # The job's samples begin: the weights stay, the rest tunes after the new unit's window.
    assert g.step(400.0, wish, "client").event == "restart"
    seen = [g.step(400.0, wish, "client") for _ in range(CFG.canary)]
    assert set(seen[-1].reasons) == {"cpus.trainer", "readahead"}


def test_a_job_that_never_reports_tunes_every_family_after_the_hold() -> None:
    g = Guard(DEFAULT, HOLD)
    g.seed([1.0] * CFG.warmup, "proxy")
    wish = DEFAULT.copy()
    wish[W["cpus.trainer"]] -= 1
    moved_at = next(t for t in range(30) if g.step(1.0, wish, "proxy").reasons)
    assert g.t > HOLD.startup_hold and moved_at > 0
    assert _moved(g.levels) == ["cpus.trainer"]


def test_the_startup_hold_is_set_in_seconds() -> None:
    s = Settings.model_validate({"guard_startup_hold_s": 10})
    assert GuardConfig.for_interval(0.5, s).startup_hold == 20
    assert GuardConfig.for_interval(0.5).startup_hold == 0  # off by default
