"""Batch norms folded into the convolution before them, wherever they use moving statistics.

A batch norm that normalizes with its moving statistics (inference, or any
frozen batch norm: Matterport's ``TRAIN_BN = False``) is an affine map per
channel, ``y = (z - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``.
After a linear convolution ``z = conv(x, W) + b`` the pair is one
convolution::

    y = conv(x, W * s) + (b - mean) * s + beta

(``s`` scales the kernel's output channels; a depthwise kernel
``[kh, kw, C, M]`` has output channel ``c * M + m``). Keras computes the
batch norm as separate element-wise ops over the whole activation, in
float32 even under mixed precision (a cast up, the affine map, a cast back).
Folded, the batch norm costs a kernel-sized product instead (measured below).

`fold_batch_norms(model)` links each convolution -> batch norm pair of a
built functional model (nested models included) without changing a layer,
a variable, a name or a saved file: every layer keeps its weights, and
checkpoints, ``get_layer`` and weights loaded by name are unchanged. At call
time the convolution still computes its own output (anything that reads it
gets the right value) and remembers its input; the batch norm, in inference
mode and given that very output, returns the folded convolution of the
remembered input instead of normalizing. Inside a ``tf.function`` the
convolution's own output then has no consumer and TensorFlow drops it.
Eagerly, in training mode with batch statistics (``TRAIN_BN``) or for any
input that is not the convolution's last output, both layers run as before.
The folded shift is added with TensorFlow's ``BiasAdd`` (Keras' convolutions
add their bias with ``AddV2``): TensorFlow's graph optimizer then fuses the
convolution, the bias and a following ReLU into one oneDNN kernel, which
``AddV2`` prevents (ResNet50 at 512x512 in bfloat16, `predict_on_batch`: 0.088 s
apart, 0.073 s folded with ``AddV2``, 0.052 s with ``BiasAdd``).

TensorFlow only: XLA (JAX) already fuses the batch norm's element-wise ops
into the convolution, and folding there cost 3% (ResNet50 at 512x512 on a
2-core CPU, float32 and bfloat16: the kernel products each call); PyTorch
runs eagerly, where both convolutions would run.

Measured on a 2-core Intel Xeon with AMX, bfloat16, each pair of models in
one process, alternating calls (the machine's speed drifts between
processes): ResNet50-FPN `detect()` at 512x512 0.297 / 0.311 s folded
against 0.357 / 0.366 s (medians of 20, two processes), a frozen-batch-norm
training step 0.774 s against 0.855 s (``benchmarks/RESULTS.md``).

A pair is folded when the batch norm is a plain
``keras.layers.BatchNormalization`` on the last axis (no renorm), called once,
on the output of a channels-last ``Conv2D`` (or subclass keeping its ``call``,
such as `mrcnn.heads.same_conv.SameConv2D`) or ``DepthwiseConv2D`` with no
activation, called once, whose output feeds only that batch norm.
"""

import keras
from keras import ops

from mrcnn.layers.walk import leaf_layers


def _tracing():
    """Whether a ``tf.function`` is being traced (there an unused convolution is dropped)."""
    import tensorflow as tf

    return not tf.executing_eagerly()


def _single_node(layer):
    return len(getattr(layer, "_inbound_nodes", ())) == 1


def _foldable_conv(layer):
    """Whether `layer` is a convolution whose output a following batch norm may absorb."""
    conv_types = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    if not isinstance(layer, conv_types):
        return False
    base = (keras.layers.DepthwiseConv2D if isinstance(layer, keras.layers.DepthwiseConv2D)
            else keras.layers.Conv2D)
    return (type(layer).call is base.call and layer.data_format == "channels_last"
            and layer.activation in (None, keras.activations.linear)
            and _single_node(layer) and len(layer._outbound_nodes) == 1)


def _foldable_bn(layer):
    bn = keras.layers.BatchNormalization
    return (isinstance(layer, bn) and type(layer).call is bn.call and not layer.renorm
            and layer.axis in (-1, 3) and _single_node(layer))


def _producer(layer):
    """The layer whose output is `layer`'s only input, or None."""
    node = layer._inbound_nodes[0]
    if len(node.input_tensors) != 1:
        return None
    return node.input_tensors[0]._keras_history.operation


def _float32(variable):
    """A float32 variable's own value, not rounded to the compute dtype first.

    Inside a layer's call under mixed precision, Keras casts a variable to the compute dtype
    as it is read (``kernel`` -> bfloat16); folding that into float32 again would round the
    kernel twice and cost two more passes over it. The TensorFlow variable under the Keras
    one is read instead.
    """
    import tensorflow as tf

    raw = getattr(variable, "_value", None)
    if isinstance(raw, tf.Variable):
        return tf.cast(raw, "float32")
    return ops.cast(variable, "float32")


def _folded_conv(conv, bn, x):
    """conv(x) followed by bn in inference mode, as one convolution (module docstring)."""
    f32 = "float32"
    scale = ops.rsqrt(_float32(bn.moving_variance) + bn.epsilon)
    if bn.scale:
        scale = scale * _float32(bn.gamma)
    shift = -_float32(bn.moving_mean) * scale
    if conv.use_bias:
        shift = shift + _float32(conv.bias) * scale
    if bn.center:
        shift = shift + _float32(bn.beta)
    kernel = _float32(conv.kernel)
    dtype = conv.compute_dtype
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        kernel = ops.cast(kernel * ops.reshape(scale, kernel.shape[2:]), dtype)
        y = ops.depthwise_conv(x, kernel, strides=conv.strides, padding=conv.padding,
                               dilation_rate=conv.dilation_rate, data_format=conv.data_format)
    else:
        y = conv.convolution_op(x, ops.cast(kernel * scale, dtype))
    # BiasAdd, not Keras' AddV2: TensorFlow's graph optimizer fuses a convolution, its
    # BiasAdd and a following ReLU into one oneDNN kernel (module docstring)
    import tensorflow as tf

    return ops.cast(tf.nn.bias_add(y, ops.cast(shift, dtype)), bn.compute_dtype)


def _link(conv, bn):
    """Give `conv` and `bn` instance calls that fold the pair (module docstring)."""
    conv_call, bn_call = conv.call, bn.call
    last = {}       # the conv's last traced call: its output and its input

    def call_conv(inputs):
        outputs = conv_call(inputs)
        if _tracing():
            last["pair"] = (outputs, inputs)
        return outputs

    def call_bn(inputs, training=None, mask=None):
        output, x = last.pop("pair", (None, None))
        if output is inputs and mask is None and not (training and bn.trainable):
            return _folded_conv(conv, bn, x)
        return bn_call(inputs, training=training, mask=mask)

    # object.__setattr__: Keras' own __setattr__ would track the functions' layers as state
    object.__setattr__(conv, "call", call_conv)
    object.__setattr__(bn, "call", call_bn)
    object.__setattr__(bn, "_mrcnn_folded_into", conv.name)


def fold_batch_norms(model):
    """Fold each convolution -> batch norm pair of the built functional `model` (module docstring).

    Layers already linked are left as they are; on JAX and PyTorch it folds
    nothing (module docstring).

    Args:
        model: a built functional ``keras.Model``; nested models are walked.

    Returns:
        list of (convolution name, batch norm name) pairs linked by this call.
    """
    if keras.backend.backend() != "tensorflow":
        return []
    pairs = []
    for layer in leaf_layers(model):
        if not _foldable_bn(layer) or hasattr(layer, "_mrcnn_folded_into"):
            continue
        conv = _producer(layer)
        if conv is not None and _foldable_conv(conv):
            _link(conv, layer)
            pairs.append((conv.name, layer.name))
    return pairs
