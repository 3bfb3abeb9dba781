"""Type aliases shared by the data modules."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# an image or batch that a function accepts as numpy or TensorFlow and returns in the same kind
ImageLike = np.ndarray | tf.Tensor
# anything tf.convert_to_tensor takes: a tensor, a numpy array, a nested list of numbers
TensorLike = np.ndarray | tf.Tensor | list | float
