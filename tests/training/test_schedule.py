"""Tests of mrcnn.training.schedule: WarmupDecay against a hand-written
formula, its config, and schedule_from_config."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from model_helpers import make_config
from mrcnn.training.schedule import WarmupDecay, schedule_from_config


def reference_lr(step, base_lr, warmup_steps=0, total_steps=1, decay=None,
                 final_fraction=0.01):
    """The documented schedule, in plain Python."""
    if warmup_steps > 0 and step < warmup_steps:
        ramp = (step + 1) / warmup_steps
    else:
        ramp = 1.0
    span = max(total_steps - warmup_steps, 1)
    t = min(max((step - warmup_steps) / span, 0.0), 1.0)
    if decay == "cosine":
        factor = final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * t))
    elif decay == "exponential":
        factor = final_fraction ** t
    else:
        factor = 1.0
    return base_lr * ramp * factor


CASES = [
    dict(base_lr=0.02, warmup_steps=10, total_steps=50, decay=None),
    dict(base_lr=0.02, warmup_steps=0, total_steps=50, decay=None),
    dict(base_lr=0.1, warmup_steps=5, total_steps=40, decay="cosine"),
    dict(base_lr=0.1, warmup_steps=0, total_steps=40, decay="cosine", final_fraction=0.0),
    dict(base_lr=1e-3, warmup_steps=7, total_steps=30, decay="exponential",
         final_fraction=0.05),
    dict(base_lr=1e-3, warmup_steps=3, total_steps=3, decay="cosine"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['decay']}-w{c['warmup_steps']}")
def test_matches_reference_formula_at_many_steps(case):
    schedule = WarmupDecay(**case)
    steps = list(range(0, case["total_steps"] + 15))
    got = [schedule.value(s) for s in steps]
    want = [reference_lr(s, **case) for s in steps]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * case["base_lr"])
    # The same through __call__ with a backend tensor (what the optimizer does).
    batch = ops.convert_to_numpy(schedule(ops.convert_to_tensor(np.array(steps), "int32")))
    np.testing.assert_allclose(batch, want, rtol=1e-5, atol=1e-6 * case["base_lr"])


def test_hand_values():
    cosine = WarmupDecay(0.1, warmup_steps=4, total_steps=14, decay="cosine",
                         final_fraction=0.0)
    # Linear ramp (step + 1) / 4, then the full rate, half way down the
    # cosine at step 4 + 10 / 2, zero at total_steps and after.
    for step, lr in ((0, 0.025), (1, 0.05), (3, 0.1), (4, 0.1), (9, 0.05),
                     (14, 0.0), (100, 0.0)):
        assert cosine.value(step) == pytest.approx(lr, abs=1e-7), step
    exponential = WarmupDecay(0.1, warmup_steps=4, total_steps=14,
                              decay="exponential", final_fraction=0.01)
    for step, lr in ((0, 0.025), (4, 0.1), (9, 0.01), (14, 0.001), (50, 0.001)):
        assert exponential.value(step) == pytest.approx(lr, rel=1e-5), step
    constant = WarmupDecay(0.3)
    assert [constant.value(s) for s in (0, 1, 1000)] == pytest.approx([0.3] * 3)


def test_warmup_ramp_is_linear_and_reaches_base_lr():
    schedule = WarmupDecay(0.5, warmup_steps=20, total_steps=100, decay="cosine")
    ramp = np.array([schedule.value(s) for s in range(20)])
    np.testing.assert_allclose(np.diff(ramp), 0.5 / 20, rtol=1e-4)
    assert ramp[-1] == pytest.approx(0.5)
    # Cosine decay is monotone after the ramp and ends at final_fraction.
    decay = np.array([schedule.value(s) for s in range(20, 101)])
    assert np.all(np.diff(decay) <= 1e-9)
    assert decay[-1] == pytest.approx(0.01 * 0.5)


def test_value_is_a_python_float():
    value = WarmupDecay(0.01, warmup_steps=2).value(0)
    assert type(value) is float and value == pytest.approx(0.005)


def test_get_config_round_trip():
    schedule = WarmupDecay(0.02, warmup_steps=3, total_steps=33,
                           decay="exponential", final_fraction=0.1)
    config = schedule.get_config()
    assert config == {"base_lr": 0.02, "warmup_steps": 3, "total_steps": 33,
                      "decay": "exponential", "final_fraction": 0.1}
    clone = WarmupDecay.from_config(config)
    assert clone.get_config() == config
    for step in (0, 2, 3, 10, 33, 40):
        assert clone.value(step) == schedule.value(step)
    # Registered with Keras: it survives serialization by name.
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, WarmupDecay)
    assert restored.get_config() == config
    # And inside an optimizer's config.
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    again = keras.optimizers.SGD.from_config(optimizer.get_config())
    saved = again.get_config()["learning_rate"]
    assert saved["registered_name"] == "mrcnn>WarmupDecay"
    assert saved["config"] == config


def test_total_steps_at_least_one():
    assert WarmupDecay(0.1, total_steps=0).total_steps == 1


def test_rejects_bad_decay_and_learning_rate():
    with pytest.raises(ValueError, match="'linear'"):
        WarmupDecay(0.1, decay="linear")
    with pytest.raises(ValueError, match="cosine"):
        WarmupDecay(0.1, decay=True)
    with pytest.raises(ValueError, match="got 0"):
        WarmupDecay(0.0)
    with pytest.raises(ValueError, match="-0.1"):
        WarmupDecay(-0.1)


@pytest.mark.parametrize("lr_schedule, decay", [
    (True, "cosine"), (False, None), (None, None), ("cosine", "cosine"),
    ("exponential", "exponential")])
def test_schedule_from_config(lr_schedule, decay):
    config = make_config(LR_SCHEDULE=lr_schedule, N_WARMUP_STEPS=25)
    schedule = schedule_from_config(config, 0.004, 500)
    assert isinstance(schedule, WarmupDecay)
    assert schedule.get_config() == {
        "base_lr": 0.004, "warmup_steps": 25, "total_steps": 500,
        "decay": decay, "final_fraction": 0.01}
    for step in (0, 24, 25, 200, 500):
        assert schedule.value(step) == pytest.approx(
            reference_lr(step, 0.004, 25, 500, decay), rel=1e-5)


@pytest.mark.parametrize("kwargs, match", [({"final_fraction": 0.0}, "final_fraction"),
                                           ({"final_fraction": 1.5}, "final_fraction"),
                                           ({"warmup_steps": -1}, "warmup_steps")])
def test_bad_final_fraction_and_warmup_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WarmupDecay(0.1, total_steps=10, decay="exponential", **kwargs)
