"""Keras' SGD with momentum whose TensorFlow update is one fused kernel per variable.

``keras.optimizers.SGD`` updates each variable with separate TensorFlow ops
(``m * momentum``, ``g * lr``, their difference, an assignment, an add), each
a full pass over the variable's memory; its decoupled weight decay multiplies
the whole variable twice (``v * wd * lr``). For ResNet50-FPN's 44 million
parameters that was 0.13 s of op time in a 1.4 s bfloat16 training step on a
2-core CPU (`benchmarks/train_profile.py`). `FusedSGD` computes the same
update with TensorFlow's ``ResourceApplyKerasMomentum`` kernel (``m = m *
momentum - lr * g; v += m``, one pass) and scales the variable once for the
weight decay (``v -= v * (wd * lr)``).

The optimizer's variables, config and checkpoints are those of Keras' SGD
(a state saved from either loads into the other). Other backends, Nesterov
momentum, momentum 0 and updates under a ``tf.distribute`` strategy (whose
mirrored slots Keras' own assignments handle) take Keras' SGD path unchanged.
"""

import keras


def _fused_here(optimizer):
    if keras.backend.backend() != "tensorflow" or optimizer.nesterov or not optimizer.momentum:
        return False
    import tensorflow as tf

    return not tf.distribute.has_strategy()


@keras.saving.register_keras_serializable(package="mrcnn")
class FusedSGD(keras.optimizers.SGD):
    """``keras.optimizers.SGD``, the same arguments and results; TensorFlow: fused updates."""

    def update_step(self, gradient, variable, learning_rate):
        """One step for one variable: ``m = momentum * m - lr * g; variable += m``."""
        if not _fused_here(self):
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        m = self.momentums[self._get_variable_index(variable)]
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=_tf_variable(variable).handle, accum=_tf_variable(m).handle,
            lr=tf.cast(learning_rate, dtype), grad=tf.cast(gradient, dtype),
            momentum=tf.cast(self.momentum, dtype), use_locking=False, use_nesterov=False)

    def _apply_weight_decay(self, variables):
        """Decoupled weight decay, ``v -= v * (wd * lr)``: one pass over each variable."""
        if self.weight_decay is None or not _fused_here(self):
            return super()._apply_weight_decay(variables)
        import tensorflow as tf

        for variable in variables:
            if not self._use_weight_decay(variable):
                continue
            tf_var = _tf_variable(variable)
            rate = tf.cast(self.weight_decay, tf_var.dtype) * tf.cast(self.learning_rate,
                                                                       tf_var.dtype)
            tf_var.assign_sub(tf_var * rate)


def _tf_variable(variable):
    """The TensorFlow variable of a Keras variable (a TensorFlow one as it is)."""
    return variable.value if isinstance(variable, keras.Variable) else variable
