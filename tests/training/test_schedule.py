"""Tests of mrcnn.training.schedule: WarmupDecay and WarmupStepDecay against
hand-written formulas, their configs, and schedule_from_config."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from model_helpers import make_config
from mrcnn.training.schedule import WarmupDecay, WarmupStepDecay, schedule_from_config


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


# ---------------------------------------------------------------- step decay
def reference_step_lr(step, base_lr, warmup_steps=0, decay_steps=(), gamma=0.1):
    """The documented step schedule, in plain Python: ramp, then gamma per passed step."""
    ramp = (step + 1) / warmup_steps if warmup_steps > 0 and step < warmup_steps else 1.0
    passed = sum(1 for boundary in decay_steps if step >= boundary)
    return base_lr * ramp * gamma ** passed


STEP_CASES = [
    dict(base_lr=0.02, warmup_steps=0, decay_steps=(10, 25), gamma=0.1),
    dict(base_lr=0.02, warmup_steps=8, decay_steps=(10, 25), gamma=0.1),
    dict(base_lr=1e-3, warmup_steps=12, decay_steps=(5, 30), gamma=0.5),      # decay in the ramp
    dict(base_lr=0.0011, warmup_steps=3, decay_steps=(13, 17, 20, 22, 23), gamma=0.5),  # seed 004
    dict(base_lr=0.1, warmup_steps=4, decay_steps=(), gamma=0.1),
    dict(base_lr=0.1, warmup_steps=0, decay_steps=(1,), gamma=1.0),
]


@pytest.mark.parametrize("case", STEP_CASES,
                         ids=lambda c: f"w{c['warmup_steps']}-{len(c['decay_steps'])}steps")
def test_step_decay_matches_reference_formula_at_many_steps(case):
    schedule = WarmupStepDecay(**case)
    steps = list(range(0, 45))
    want = [reference_step_lr(s, **case) for s in steps]
    got = [schedule.value(s) for s in steps]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    batch = ops.convert_to_numpy(schedule(ops.convert_to_tensor(np.array(steps), "int32")))
    np.testing.assert_allclose(batch, want, rtol=1e-6, atol=0)


def test_step_decay_hand_values():
    # 4 warm-up steps, then 0.1; x0.1 from step 10 on, x0.01 from step 20 on.
    schedule = WarmupStepDecay(0.1, warmup_steps=4, decay_steps=(10, 20), gamma=0.1)
    for step, lr in ((0, 0.025), (1, 0.05), (3, 0.1), (4, 0.1), (9, 0.1), (10, 0.01),
                     (19, 0.01), (20, 0.001), (1000, 0.001)):
        assert schedule.value(step) == pytest.approx(lr, rel=1e-6), step
    # A drop inside the warm-up multiplies the ramp: step 1 of a 4-step ramp, halved.
    inside = WarmupStepDecay(0.1, warmup_steps=4, decay_steps=(1,), gamma=0.5)
    assert [inside.value(s) for s in (0, 1, 3, 9)] == pytest.approx([0.025, 0.025, 0.05, 0.05])


def test_step_decay_get_config_round_trip():
    schedule = WarmupStepDecay(0.004, warmup_steps=5, decay_steps=(40, 50), gamma=0.5)
    config = schedule.get_config()
    assert config == {"base_lr": 0.004, "warmup_steps": 5, "decay_steps": [40, 50],
                      "gamma": 0.5}
    clone = WarmupStepDecay.from_config(config)
    assert clone.get_config() == config
    for step in (0, 4, 39, 40, 49, 50, 99):
        assert clone.value(step) == schedule.value(step)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, WarmupStepDecay) and restored.get_config() == config
    optimizer = keras.optimizers.AdamW(learning_rate=schedule)
    saved = keras.optimizers.AdamW.from_config(optimizer.get_config()).get_config()
    assert saved["learning_rate"]["registered_name"] == "mrcnn>WarmupStepDecay"
    assert saved["learning_rate"]["config"] == config


@pytest.mark.parametrize("kwargs, match", [
    ({"decay_steps": (10, 10)}, r"decay_steps must be increasing ints >= 1, got \(10, 10\)"),
    ({"decay_steps": (20, 10)}, r"got \(20, 10\)"),
    ({"decay_steps": (0, 10)}, r"got \(0, 10\)"),
    ({"decay_steps": (2.5,)}, r"got \(2\.5,\)"),
    ({"decay_steps": (True,)}, r"got \(True,\)"),
    ({"decay_steps": "10,20"}, r"got '10,20'"),
    ({"gamma": 0.0}, r"gamma must be a number in \(0, 1\], got 0\.0"),
    ({"gamma": 1.5}, r"got 1\.5"),
    ({"gamma": "0.1"}, r"got '0\.1'"),
    ({"gamma": float("nan")}, r"got nan"),
    ({"warmup_steps": -1}, "warmup_steps"),
    ({"base_lr": 0.0}, r"learning rate must be a number > 0, got 0\.0"),
])
def test_step_decay_refuses_bad_arguments(kwargs, match):
    args = dict(base_lr=0.1, decay_steps=(10,), gamma=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        WarmupStepDecay(**args)


def test_schedule_from_config_step_turns_epochs_into_optimizer_steps():
    # README: LR_DECAY_EPOCHS = (20, 25), LR_DECAY_GAMMA = 0.1.
    config = make_config(LR_SCHEDULE="step", LR_DECAY_EPOCHS=(20, 25), LR_DECAY_GAMMA=0.1,
                         N_WARMUP_STEPS=30, STEPS_PER_EPOCH=7)
    schedule = schedule_from_config(config, 0.002, 30 * 7)
    assert isinstance(schedule, WarmupStepDecay)
    assert schedule.get_config() == {"base_lr": 0.002, "warmup_steps": 30,
                                     "decay_steps": [140, 175], "gamma": 0.1}
    # Epoch 20 (1-based) is steps 133..139 at the full rate; epoch 21 starts at 0.1 of it.
    for step, lr in ((0, 0.002 / 30), (29, 0.002), (139, 0.002), (140, 0.0002),
                     (174, 0.0002), (175, 0.00002), (209, 0.00002)):
        assert schedule.value(step) == pytest.approx(lr, rel=1e-6), step
    # Another epoch length (plot_lr_schedule(steps=...)) moves the drops with it.
    other = schedule_from_config(config, 0.002, 300, steps_per_epoch=10)
    assert other.decay_steps == (200, 250)
    # A Config loaded from config.json holds a list: the same schedule.
    listed = make_config(LR_SCHEDULE="step", LR_DECAY_EPOCHS=[20, 25], STEPS_PER_EPOCH=7)
    assert schedule_from_config(listed, 0.002, 1).decay_steps == (140, 175)


def test_optimizer_follows_the_step_schedule_from_the_start_of_training():
    """build_optimizer + restore_step: a resumed run continues at the epoch's rate."""
    from mrcnn.training.loop import restore_step
    from mrcnn.training.optimizer import build_optimizer

    config = make_config(LR_SCHEDULE="step", LR_DECAY_EPOCHS=(2, 3), LR_DECAY_GAMMA=0.5,
                         STEPS_PER_EPOCH=4, OPTIMIZER="AdamW")
    variable = keras.Variable(np.zeros(3, np.float32))
    optimizer = build_optimizer(config, 0.01, 0.9, total_steps=5 * 4)
    optimizer.build([variable])
    # The rate the optimizer applies is schedule(iterations), iterations 0-based.
    for iterations, lr in ((0, 0.01), (7, 0.01), (8, 0.005), (11, 0.005), (12, 0.0025)):
        optimizer.iterations.assign(iterations)
        assert float(ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(
            lr, rel=1e-6), iterations
    # A new train() call resuming after epoch 2 (a fresh model: no previous optimizer)
    # starts at step 8, the first step after the first drop.
    resumed = build_optimizer(config, 0.01, 0.9, total_steps=5 * 4)
    resumed.build([variable])
    restore_step(resumed, None, epoch=2, steps_per_epoch=4)
    assert float(ops.convert_to_numpy(resumed.learning_rate)) == pytest.approx(0.005)


@pytest.mark.slow
def test_train_applies_step_decay_across_train_calls(tmp_path):
    """MaskRCNN.train: the rate of every batch, epochs counted from the start of training."""
    import mrcnn.model as modellib
    from model_helpers import shapes

    class RecordRate(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rates = []

        def on_train_batch_begin(self, batch, logs=None):
            self.rates.append(float(ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    config = make_config(LR_SCHEDULE="step", LR_DECAY_EPOCHS=(1, 2), LR_DECAY_GAMMA=0.5,
                         N_WARMUP_STEPS=2, STEPS_PER_EPOCH=3, VALIDATION_STEPS=0)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    record = RecordRate()
    model.train(shapes(4), None, 0.01, 2, "heads", custom_callbacks=[record], verbose=0)
    model.train(shapes(4), None, 0.01, 3, "all", custom_callbacks=[record], verbose=0)
    want = [reference_step_lr(s, 0.01, 2, (3, 6), 0.5) for s in range(9)]
    np.testing.assert_allclose(record.rates, want, rtol=1e-6)
    assert want[:4] == pytest.approx([0.005, 0.01, 0.01, 0.005])
