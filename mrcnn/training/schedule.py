"""Learning-rate schedule: linear warm-up, then constant, cosine or exponential decay."""

import math

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


def schedule_from_config(config, learning_rate, total_steps):
    """Build the WarmupDecay for a Config (N_WARMUP_STEPS, LR_SCHEDULE)."""
    decay = config.LR_SCHEDULE
    if decay is True:
        decay = "cosine"
    elif decay is False:
        decay = None
    return WarmupDecay(learning_rate, warmup_steps=config.N_WARMUP_STEPS,
                       total_steps=total_steps, decay=decay)
