"""A Conv2D whose kernel covers its whole input, computed as one matrix product.

Matterport's box head makes its first "fully connected" layer a ``pool x pool``
'valid' convolution over each ROI's pooled features (``mrcnn_class_conv1``,
kernel [pool, pool, C, F]) and its second a 1x1 convolution on the 1x1 result.
Both equal a dense layer on the flattened window: row-major [pool, pool, C]
flattening matches the kernel reshaped to [pool * pool * C, F]. TensorFlow's
CPU kernels compute the input gradient of such a convolution very slowly
(Eigen's on an AVX2 CPU: 0.3 s of a 0.48 s shapes-sample step for a
[256, 7, 7, 64] -> 256 layer, where the matrix product takes milliseconds), so
this layer computes the product directly. The variables, their shapes and the
layer's name stay those of the Conv2D, so Matterport's and earlier checkpoints
load unchanged and a saved model built with plain Conv2D layers still loads.
"""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="mrcnn")
class WindowConv2D(layers.Conv2D):
    """`keras.layers.Conv2D` for inputs [N, kh, kw, C] with kernel_size (kh, kw), 'valid'.

    Output [N, 1, 1, filters], as the Conv2D gives (at any stride: one window). Other
    input sizes, dilations or channels_first fall back to the convolution.
    """

    def _is_whole_window(self, inputs):
        return (self.data_format == "channels_last" and self.padding == "valid"
                and tuple(self.dilation_rate) == (1, 1)
                and tuple(inputs.shape[1:3]) == tuple(self.kernel_size))

    def convolution_op(self, inputs, kernel):
        if not self._is_whole_window(inputs):
            return super().convolution_op(inputs, kernel)
        kh, kw = self.kernel_size
        window = ops.reshape(inputs, (-1, kh * kw * inputs.shape[3]))
        weights = ops.reshape(kernel, (kh * kw * inputs.shape[3], self.filters))
        return ops.reshape(ops.matmul(window, weights), (-1, 1, 1, self.filters))
