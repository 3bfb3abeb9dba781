"""Fusion of two SR outputs (NTIRE 2020 Real-World SR)."""

from __future__ import annotations

import tensorflow as tf

from visionfw.data.types import TensorLike


def gan_fusion(y_r: TensorLike, y_s: TensorLike, a: float, b: float, gamma: float) -> tf.Tensor:
    """NTIRE 2020 Real-World SR runner-up fusion, per image of NHWC batches.

    ``a * y_r + b * y_s`` where the median of ``y_r``'s luma is below ``gamma``, else ``y_r``.
    Luma: MATLAB ``rgb2ycbcr`` Y (BT.601, [16, 235] / 255) of RGB, the image itself when grey
    (:func:`visionfw.data.color.to_y`); the median of an even count is the mean of the middle two.

    Args:
        y_r: the first SR batch (its luma decides).
        y_s: the second SR batch.
        a: weight of ``y_r`` in the fusion.
        b: weight of ``y_s``.
        gamma: luma median threshold.

    Returns:
        float32 NHWC batch.
    """
    from visionfw.data.color import to_y

    y_r = tf.convert_to_tensor(y_r, tf.float32)
    y_s = tf.convert_to_tensor(y_s, tf.float32)
    luma = tf.reshape(to_y(y_r), [tf.shape(y_r)[0], -1])
    ranked = tf.sort(luma, axis=-1)
    count = tf.shape(ranked)[1]
    median = 0.5 * (tf.gather(ranked, (count - 1) // 2, axis=1) + tf.gather(ranked, count // 2, axis=1))
    fused = a * y_r + b * y_s
    return tf.where(tf.reshape(median < gamma, [-1, 1, 1, 1]), fused, y_r)
