"""A 2x2, stride-2 transposed convolution computed as one matrix product.

Matterport's mask head upsamples with ``Conv2DTranspose(C, 2, strides=2)``.
Its 2x2 windows do not overlap, so every output pixel comes from exactly one
input pixel: ``y[2i + a, 2j + b, f] = sum_c x[i, j, c] * K[a, b, f, c] + bias[f]``
(``K`` in Keras' ``[kh, kw, filters, in_channels]`` layout). That is one
``[H * W, C] x [C, 4 * F]`` matrix product followed by a depth-to-space
rearrangement, which every backend runs at matrix speed. XLA:CPU (JAX) runs
the transposed convolution itself as a base-dilated convolution through a
slow generic kernel: 11.2 s of an 18.2 s ResNet50 training step at 256x256
went to that one instruction (benchmarks/RESULTS.md, the JAX analysis).

`UpsampleConv2DTranspose` is a ``keras.layers.Conv2DTranspose``: same
variables, names and shapes, so Matterport's weights load into it by name,
and its output equals the parent's (to float rounding) for
``kernel_size == strides`` and ``padding="valid"``; any other setting runs
the parent's transposed convolution.
"""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="mrcnn")
class UpsampleConv2DTranspose(layers.Conv2DTranspose):
    """``Conv2DTranspose`` whose non-overlapping case (kernel == strides) is a matmul."""

    def _non_overlapping(self):
        return (tuple(self.kernel_size) == tuple(self.strides) and self.padding == "valid"
                and self.data_format == "channels_last"
                and tuple(self.dilation_rate) == (1, 1) and self.output_padding is None)

    def call(self, inputs):
        if not self._non_overlapping():
            return super().call(inputs)
        kh, kw = self.kernel_size
        h, w, c = inputs.shape[1], inputs.shape[2], inputs.shape[3]
        f = self.filters
        # [kh, kw, f, c] -> [c, kh * kw * f]
        kernel = ops.reshape(ops.transpose(self.kernel, (3, 0, 1, 2)), (c, kh * kw * f))
        y = ops.matmul(inputs, kernel)                        # [n, h, w, kh * kw * f]
        y = ops.reshape(y, (-1, h, w, kh, kw, f))
        y = ops.transpose(y, (0, 1, 3, 2, 4, 5))              # [n, h, kh, w, kw, f]
        y = ops.reshape(y, (-1, h * kh, w * kw, f))
        if self.use_bias:
            y = ops.add(y, self.bias)
        if self.activation is not None:
            y = self.activation(y)
        return y
