"""The optimizer of a training run: SGD or AdamW, schedule, clipping, weight decay, loss scaling."""

import keras

from mrcnn.training.fused_sgd import FusedSGD
from mrcnn.training.precision import resolve
from mrcnn.training.schedule import schedule_from_config


def build_optimizer(config, learning_rate, momentum, total_steps):
    """The optimizer Config asks for.

    * ``Config.OPTIMIZER``: "SGD" (momentum ``momentum``, Matterport's;
      `mrcnn.training.fused_sgd.FusedSGD`, Keras' SGD with fused TensorFlow
      updates) or "AdamW" (``beta_1 = momentum``);
    * the learning rate follows `mrcnn.training.schedule.schedule_from_config`
      (``WarmupDecay``, or ``WarmupStepDecay`` for ``LR_SCHEDULE = "step"``;
      ``N_WARMUP_STEPS``) over ``total_steps``;
    * per-variable gradient clipping at ``GRADIENT_CLIP_NORM`` (0/None: off);
    * decoupled weight decay ``WEIGHT_DECAY`` on kernels, not on BatchNorm
      gamma/beta or biases;
    * ``MIXED_PRECISION = "float16"`` wraps it in a ``LossScaleOptimizer``
      (float16 gradients underflow without loss scaling; bfloat16 needs none).

    Returns:
        a ``keras.optimizers.Optimizer``.
    """
    schedule = schedule_from_config(config, learning_rate, total_steps)
    common = dict(learning_rate=schedule, clipnorm=config.GRADIENT_CLIP_NORM or None,
                  weight_decay=config.WEIGHT_DECAY or None)
    if config.OPTIMIZER.lower() == "adamw":
        common["weight_decay"] = float(config.WEIGHT_DECAY or 0.0)  # AdamW needs a float
        optimizer = keras.optimizers.AdamW(beta_1=momentum, **common)
    else:
        optimizer = FusedSGD(momentum=momentum, **common)
    if config.WEIGHT_DECAY:
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    if resolve(config.MIXED_PRECISION, config.BACKBONE) == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
