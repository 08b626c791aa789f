"""A stride-1 'same' Conv2D whose TensorFlow gradients are forward convolutions.

For stride 1, dilation 1, an odd kernel and 'same' padding, the gradient of
``y = conv(x, W)`` with respect to ``x`` is ``conv(dy, W')``, where ``W'`` is the
kernel turned by 180 degrees with its input and output channels swapped
(``W'[i, j, f, c] = W[kh-1-i, kw-1-j, c, f]``), also 'same'. TensorFlow's CPU
kernel for that gradient (``Conv2DBackpropInput``) runs at a fraction of the
forward kernel's speed on some CPUs: on a 2-core AMD EPYC (AVX2), for the mask
head's [84, 14, 14, 256] -> 256 3x3 convolution, 290-355 ms against 140-150 ms
for the forward convolution of the same size; the four mask-head convolutions'
input gradients took 1.3 s of the main command's 2.9 s training step. This
layer gives TensorFlow the forward convolution for that gradient, and computes
the kernel gradient as a forward convolution too (the images' channels as the
batch, the output gradient as the kernel): 149 ms against
``Conv2DBackpropFilter``'s 270 ms for the FPN's [1, 128, 128, 256] -> 256 level,
133 vs 148 ms for the mask head's shape. On CPUs with AVX-512 the opposite
holds (a 2-core AMD EPYC with AVX512-BF16: TensorFlow's input gradient as fast
as the forward convolution, its kernel gradient 1.0-2.3x faster than the
forward-convolution form; the whole ResNet50-FPN step 10% slower in float32,
2% in bfloat16, with this layer's gradients), so they are taken only where
they were measured faster (`forward_grads_pay`: TensorFlow on a CPU without
AVX-512, no GPU). JAX and PyTorch derive their gradients as before. The
variables, their shapes and the layer's name are those of the Conv2D, so
Matterport's and earlier checkpoints load unchanged and saved models built with
plain Conv2D layers still load.
"""

import functools

import keras
from keras import layers

from mrcnn.cpuinfo import cpu_features


@functools.lru_cache(maxsize=1)
def forward_grads_pay():
    """Whether TensorFlow's own 3x3 conv gradients are the slow ones on this machine.

    True on a CPU without AVX-512 (AVX2 only, where TensorFlow 2.21 leaves oneDNN
    off by default: Eigen's ``Conv2DBackpropInput`` ran at half the forward
    convolution's speed), with no GPU visible to TensorFlow; False with AVX-512
    (measured on a CPU where oneDNN is on by default: the native gradients are
    as fast or faster) or a GPU (cuDNN's gradients).
    """
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return False
    _, flags = cpu_features()
    return bool(flags) and "avx512f" not in flags


def _forward_conv_grads(x, w, dy):
    """(dx, dW) of conv(x, w, 'same', stride 1) for the output gradient dy, as forward convs."""
    import tensorflow as tf

    turned = tf.transpose(tf.reverse(w, [0, 1]), (0, 1, 3, 2))   # W': [kh, kw, F, C]
    dx = tf.nn.conv2d(dy, turned, 1, "SAME")
    # dW[i, j, c, f] = sum over n, p of x_padded[n, p + (i, j), c] * dy[n, p, f]: a 'valid'
    # convolution of the images' channels (as a batch) with dy as the kernel
    kh, kw = w.shape[0], w.shape[1]
    padded = tf.pad(x, [[0, 0], [kh // 2, kh // 2], [kw // 2, kw // 2], [0, 0]])
    dw = tf.nn.conv2d(tf.transpose(padded, (3, 1, 2, 0)),        # [C, H+kh-1, W+kw-1, N]
                      tf.transpose(dy, (1, 2, 0, 3)), 1,          # [H, W, N, F]
                      "VALID")                                     # [C, kh, kw, F]
    return dx, tf.transpose(dw, (1, 2, 0, 3))


def _tf_conv_with_forward_grads(inputs, kernel):
    """TensorFlow: conv(inputs, kernel, 'same'), both gradients by `_forward_conv_grads`."""
    import tensorflow as tf

    # The gradient's ops would be made outside any name scope; give them the layer's, under
    # gradient_tape/ as TensorFlow's own gradients (benchmarks/train_profile.py reads them).
    scope = "/".join(filter(None, ["gradient_tape", tf.get_current_name_scope().strip("/")])) + "/"

    @tf.custom_gradient
    def conv(x, w):
        def grad(dy):
            with tf.name_scope(scope):
                return _forward_conv_grads(x, w, dy)
        return tf.nn.conv2d(x, w, 1, "SAME"), grad

    # Read the kernel variable outside the custom gradient: its gradient flows through the read.
    return conv(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))


@keras.saving.register_keras_serializable(package="mrcnn")
class SameConv2D(layers.Conv2D):
    """`keras.layers.Conv2D` (channels_last, stride 1, odd kernel, 'same').

    Inputs [N, H, W, C] -> [N, H, W, filters], as the Conv2D. On TensorFlow, on a
    CPU where it pays (`forward_grads_pay`), both gradients are computed as forward
    convolutions (module docstring); other machines, settings or backends are the
    plain Conv2D.
    """

    def _takes_forward_grad(self):
        return (keras.backend.backend() == "tensorflow"
                and self.data_format == "channels_last" and self.padding == "same"
                and tuple(self.strides) == (1, 1) and tuple(self.dilation_rate) == (1, 1)
                and self.groups == 1 and all(k % 2 == 1 for k in self.kernel_size)
                and forward_grads_pay())

    def convolution_op(self, inputs, kernel):
        if not self._takes_forward_grad():
            return super().convolution_op(inputs, kernel)
        return _tf_conv_with_forward_grads(inputs, kernel)
