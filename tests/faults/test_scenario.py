"""The fault plan of a seed: every targeted kind, both phases, K where the fault can fire (fast)."""

import pytest

from tests.faults import injection, scenario, training_setup

# Backend-independent: the fault plan of a seed is pure Python; nothing is trained.
pytestmark = pytest.mark.backend_independent


def split(step):
    kind, index, phase = step.split(":")
    return kind, int(index), phase


@pytest.mark.parametrize("seed", range(10))
def test_plan_kills_at_every_write_point_then_finishes(seed):
    steps = scenario.plan(seed, random_kills=2)
    assert steps == scenario.plan(seed, random_kills=2)             # seeded
    assert steps[-1] == "final"
    randoms = [s for s in steps if isinstance(s, tuple)]
    assert len(randoms) == 2 and steps[-3:-1] == randoms
    assert all(s[0] == "random" and 0 <= s[1] <= scenario.RANDOM_KILL_WINDOW_S for s in randoms)
    targeted = [split(s) for s in steps[:-3]]
    assert [k for k, _, _ in targeted] == ["cache", "cache", "checkpoint", "step", "checkpoint",
                                           "history", "config"]
    cache, checkpoint = targeted[0:2], [targeted[2], targeted[4]]
    assert {p for _, _, p in cache} == {p for _, _, p in checkpoint} == {"partial", "rename"}
    assert all(1 <= k <= scenario.FIRST_EPOCH_CACHE_WRITES for _, k, _ in cache)
    assert checkpoint[0][1] == 1 and checkpoint[1][1] in (1, 2)
    per_epoch = training_setup.STEPS_PER_EPOCH
    assert per_epoch < targeted[3][1] <= 2 * per_epoch              # a step of epoch 2
    for kind, _, phase in targeted:
        assert phase in injection.PHASES[kind]


def test_plans_differ_between_seeds():
    assert len({str(scenario.plan(seed)) for seed in range(10)}) == 10


def test_the_default_plan_has_one_random_kill():
    assert sum(isinstance(s, tuple) for s in scenario.plan(0)) == 1
