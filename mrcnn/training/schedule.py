"""Learning-rate schedules: linear warm-up, then constant, cosine, exponential or step decay.

:class:`WarmupDecay` (constant, cosine, exponential) and :class:`WarmupStepDecay`
(the rate times ``gamma`` after given steps, detectron2's / mmdetection's
``step`` policy) work on optimizer steps; :func:`schedule_from_config` builds
the one a Config asks for.
"""

import math
import numbers

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mrcnn")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate as a function of the optimizer step.

    ``lr(step) = base_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``,
    then ``base_lr`` times the decay factor of the remaining run:

    * ``decay=None``: constant;
    * ``"cosine"``: ``f + (1 - f) * 0.5 * (1 + cos(pi * t))`` with ``f =
      final_fraction`` and ``t`` the fraction of the post-warm-up steps done
      (reaches ``f * base_lr`` at ``total_steps``);
    * ``"exponential"``: ``final_fraction ** t``.

    Args:
        base_lr: peak learning rate (Config.LEARNING_RATE).
        warmup_steps: steps of linear warm-up (Config.N_WARMUP_STEPS), 0 for none.
        total_steps: total steps of the run (epochs * steps per epoch), used by
            the decays.
        decay: None, "cosine" or "exponential".
        final_fraction: learning rate at the end as a fraction of base_lr.
    """

    def __init__(self, base_lr, warmup_steps=0, total_steps=1, decay=None, final_fraction=0.01):
        if decay not in (None, "cosine", "exponential"):
            raise ValueError(f"decay must be None, 'cosine' or 'exponential', got {decay!r}")
        if base_lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {base_lr!r}")
        if int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
        if not 0 <= final_fraction <= 1 or (decay == "exponential" and final_fraction == 0):
            raise ValueError(f"final_fraction must be in [0, 1] (above 0 for the exponential "
                             f"decay), got {final_fraction!r}")
        self.base_lr = float(base_lr)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.decay = decay
        self.final_fraction = float(final_fraction)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        warmup = ops.minimum((step + 1.0) / warm, 1.0) if self.warmup_steps > 0 else 1.0
        span = float(max(self.total_steps - self.warmup_steps, 1))
        t = ops.clip((step - float(self.warmup_steps)) / span, 0.0, 1.0)
        if self.decay == "cosine":
            f = self.final_fraction
            factor = f + (1.0 - f) * 0.5 * (1.0 + ops.cos(math.pi * t))
        elif self.decay == "exponential":
            factor = ops.power(self.final_fraction, t)
        else:
            factor = 1.0
        return self.base_lr * warmup * factor

    def value(self, step):
        """The learning rate at ``step`` as a Python float (for plots and logs)."""
        return float(ops.convert_to_numpy(self(step)))

    def get_config(self):
        return {"base_lr": self.base_lr, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "decay": self.decay,
                "final_fraction": self.final_fraction}


@keras.saving.register_keras_serializable(package="mrcnn")
class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then the rate times ``gamma`` at each of ``decay_steps``.

    ``lr(step) = base_lr * ramp(step) * gamma ** k(step)`` with ``ramp(step) =
    (step + 1) / warmup_steps`` for ``step < warmup_steps`` (else 1) and
    ``k(step)`` the number of ``decay_steps`` that are ``<= step``: the step
    ``decay_steps[i]`` is the first one at the lower rate (as detectron2's
    ``SOLVER.STEPS`` and mmdetection's ``lr_config.step``). Steps are 0-based
    optimizer steps (``optimizer.iterations``), so with ``S`` steps per epoch
    the decay "after epoch ``E``" is at step ``E * S``.

    Args:
        base_lr: peak learning rate (Config.LEARNING_RATE).
        warmup_steps: steps of linear warm-up (Config.N_WARMUP_STEPS), 0 for none.
        decay_steps: increasing positive ints, the steps where the rate drops.
        gamma: factor applied at each of them, in (0, 1].
    """

    def __init__(self, base_lr, warmup_steps=0, decay_steps=(), gamma=0.1):
        if isinstance(base_lr, bool) or not isinstance(base_lr, numbers.Real) or base_lr <= 0:
            raise ValueError(f"learning rate must be a number > 0, got {base_lr!r}")
        if int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
        steps = list(decay_steps) if isinstance(decay_steps, (list, tuple)) else None
        if steps is None or any(isinstance(s, bool) or not isinstance(s, numbers.Integral)
                                or s < 1 for s in steps) or \
                any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"decay_steps must be increasing ints >= 1, got {decay_steps!r}")
        if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or \
                not 0 < gamma <= 1:
            raise ValueError(f"gamma must be a number in (0, 1], got {gamma!r}")
        self.base_lr = float(base_lr)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = tuple(int(s) for s in steps)
        self.gamma = float(gamma)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        lr = ops.minimum((step + 1.0) / warm, 1.0) if self.warmup_steps > 0 else 1.0
        lr = self.base_lr * lr
        for boundary in self.decay_steps:
            lr = lr * ops.where(step >= float(boundary), self.gamma, 1.0)
        return lr

    def value(self, step):
        """The learning rate at ``step`` as a Python float (for plots and logs)."""
        return float(ops.convert_to_numpy(self(step)))

    def get_config(self):
        return {"base_lr": self.base_lr, "warmup_steps": self.warmup_steps,
                "decay_steps": list(self.decay_steps), "gamma": self.gamma}


def schedule_from_config(config, learning_rate, total_steps, steps_per_epoch=None):
    """The schedule a Config asks for (N_WARMUP_STEPS, LR_SCHEDULE, LR_DECAY_*).

    Args:
        config: a Config.
        learning_rate: peak rate.
        total_steps: optimizer steps of the whole run (the cosine and
            exponential decays span them).
        steps_per_epoch: turns ``LR_DECAY_EPOCHS`` into steps for
            ``LR_SCHEDULE = "step"``; default Config.STEPS_PER_EPOCH.

    Returns:
        a :class:`WarmupStepDecay` for ``"step"``, else a :class:`WarmupDecay`.
    """
    decay = config.LR_SCHEDULE
    if decay == "step":
        per_epoch = int(config.STEPS_PER_EPOCH if steps_per_epoch is None else steps_per_epoch)
        return WarmupStepDecay(learning_rate, warmup_steps=config.N_WARMUP_STEPS,
                               decay_steps=[int(e) * per_epoch for e in config.LR_DECAY_EPOCHS],
                               gamma=config.LR_DECAY_GAMMA)
    if decay is True:
        decay = "cosine"
    elif decay is False:
        decay = None
    return WarmupDecay(learning_rate, warmup_steps=config.N_WARMUP_STEPS,
                       total_steps=total_steps, decay=decay)
