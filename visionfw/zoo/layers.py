"""Custom Keras layers of visionfw.

Every layer is registered as serializable (package ``visionfw``), so a model that
uses them saves to ``.keras`` and loads back with ``safe_mode=True`` and no
``custom_objects``.  Shapes are NHWC throughout.
"""

import keras
from keras import ops

from visionfw.zoo.parts import register_layer

_PACKAGE = "visionfw"


def _check_order(order, layer):
    if order not in ("tf", "torch"):
        from visionfw.errors import SpecError

        raise SpecError(
            f"{layer}: order={order!r} is not supported; use 'tf' (depth_to_space channel "
            "order) or 'torch' (PyTorch's nn.PixelShuffle channel order, for converted weights)"
        )


class _PixelRearrange(keras.layers.Layer):
    """Shared arguments of PixelShuffle and PixelUnshuffle."""

    def __init__(self, scale=2, order="tf", **kwargs):
        super().__init__(**kwargs)
        _check_order(order, type(self).__name__)
        self.scale = int(scale)
        self.order = order

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "order": self.order}


@register_layer
class PixelShuffle(_PixelRearrange):
    """Sub-pixel upsampling: (H, W, C*r*r) -> (H*r, W*r, C).

    ``order='tf'`` follows ``tf.nn.depth_to_space`` (channel index ``(i*r + j)*C + c``);
    ``order='torch'`` follows PyTorch's ``nn.PixelShuffle`` (channel index
    ``c*r*r + i*r + j``), so weights converted from PyTorch need no reordering.
    """

    def call(self, x):
        r = self.scale
        shape = ops.shape(x)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        oc = c // (r * r)
        if self.order == "tf":
            x = ops.reshape(x, (n, h, w, r, r, oc))
        else:
            x = ops.reshape(x, (n, h, w, oc, r, r))
            x = ops.transpose(x, (0, 1, 2, 4, 5, 3))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # n, h, i, w, j, c
        return ops.reshape(x, (n, h * r, w * r, oc))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.scale
        return (n, None if h is None else h * r, None if w is None else w * r, None if c is None else c // (r * r))


@register_layer
class PixelUnshuffle(_PixelRearrange):
    """Inverse of :class:`PixelShuffle`: (H, W, C) -> (H/r, W/r, C*r*r)."""

    def call(self, x):
        r = self.scale
        shape = ops.shape(x)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        x = ops.reshape(x, (n, h // r, r, w // r, r, c))
        if self.order == "tf":
            x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # n, h, w, i, j, c
        else:
            x = ops.transpose(x, (0, 1, 3, 5, 2, 4))  # n, h, w, c, i, j
        return ops.reshape(x, (n, h // r, w // r, c * r * r))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.scale
        return (n, None if h is None else h // r, None if w is None else w // r, None if c is None else c * r * r)


@register_layer
class MeanShift(keras.layers.Layer):
    """Adds ``sign * mean / std`` per channel (EDSR's RGB mean shift); no weights to train."""

    def __init__(self, mean=(0.4488, 0.4371, 0.4040), std=(1.0, 1.0, 1.0), sign=-1, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.sign = int(sign)

    def call(self, x):
        mean = ops.convert_to_tensor(self.mean, dtype=x.dtype)
        std = ops.convert_to_tensor(self.std, dtype=x.dtype)
        if self.sign < 0:
            return (x - mean) / std
        return x * std + mean

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std, "sign": self.sign}


@register_layer
class Scale(keras.layers.Layer):
    """Multiplies by a constant (EDSR's residual scaling) or, with ``trainable_scale``, a learnt scalar."""

    def __init__(self, value=1.0, trainable_scale=False, **kwargs):
        super().__init__(**kwargs)
        self.value = float(value)
        self.trainable_scale = bool(trainable_scale)

    def build(self, input_shape):
        if self.trainable_scale:
            self.scale = self.add_weight(name="scale", shape=(), initializer=keras.initializers.Constant(self.value))

    def call(self, x):
        if self.trainable_scale:
            return x * ops.cast(self.scale, x.dtype)
        return x * ops.cast(self.value, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "value": self.value, "trainable_scale": self.trainable_scale}


@register_layer
class ChannelAttention(keras.layers.Layer):
    """RCAN's channel attention: x * sigmoid(W2 relu(W1 avgpool(x) + b1) + b2).

    The two 1x1 convolutions of the paper act on a 1x1 map, so they are stored as
    dense kernels of shape (C, C/r) and (C/r, C), with biases.
    """

    def __init__(self, reduction=16, **kwargs):
        super().__init__(**kwargs)
        self.reduction = int(reduction)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        hidden = max(1, channels // self.reduction)
        self.down = keras.layers.Dense(hidden, activation="relu", name="down")
        self.up = keras.layers.Dense(channels, activation="sigmoid", name="up")
        self.down.build((None, channels))
        self.up.build((None, hidden))

    def call(self, x):
        pooled = ops.mean(x, axis=(1, 2))
        weights = self.up(self.down(pooled))
        return x * weights[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction}


@register_layer
class WeightedSum(keras.layers.Layer):
    """Learnable weighted sum of its inputs, initialised to their plain mean."""

    def build(self, input_shape):
        n = len(input_shape)
        self.w = self.add_weight(name="w", shape=(n,), initializer=keras.initializers.Constant(1.0 / n))

    def call(self, inputs):
        total = inputs[0] * ops.cast(self.w[0], inputs[0].dtype)
        for i in range(1, len(inputs)):
            total = total + inputs[i] * ops.cast(self.w[i], inputs[i].dtype)
        return total

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@register_layer
class BicubicResize(keras.layers.Layer):
    """MATLAB-compatible bicubic resize by ``scale`` (>1 up, <1 down), for pre-upsampled inputs."""

    def __init__(self, scale=2.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, x):
        from visionfw.data.imresize import imresize

        return imresize(x, scale=self.scale)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape

        def size(v):
            return None if v is None else int(-(-v * self.scale // 1))

        return (n, size(h), size(w), c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@register_layer
class Quantize(keras.layers.Layer):
    """Rounds to ``levels`` steps in [0, 1] (an 8-bit image by default).

    The rounding has a straight-through gradient, so the layers before it keep learning
    once it is on.  ``gradient`` says what passes through the clip to [0, 1] that comes
    first:

    * ``'clipped'`` (default): the clip's own gradient, 1 inside [0, 1] and 0 outside.  A
      value outside the range does not change the output, so nothing pushes it further.
    * ``'identity'``: 1 everywhere (``x + stop_gradient(q - x)``).  A value past 0 or 1 gets
      the decoder's gradient although moving it changes nothing downstream: the same push
      step after step, which Adam turns into a steady drift of the weights.  TAD training
      with this gradient diverges late (kept to reproduce that; see ``tests/test_tad.py``).

    ``enabled`` is a non-trainable variable: a training loop switches quantisation on from a
    chosen step; switched off, the layer is the identity.
    """

    GRADIENTS = ("clipped", "identity")

    def __init__(self, levels=255, enabled=True, gradient="clipped", **kwargs):
        super().__init__(**kwargs)
        if gradient not in self.GRADIENTS:
            from visionfw.errors import SpecError

            raise SpecError(f"Quantize: gradient={gradient!r} is unknown; use one of {self.GRADIENTS}.")
        self.levels = int(levels)
        self.initially_enabled = bool(enabled)
        self.gradient = gradient

    def build(self, input_shape):
        self.enabled = self.add_weight(
            name="enabled",
            shape=(),
            trainable=False,
            initializer=keras.initializers.Constant(1.0 if self.initially_enabled else 0.0),
        )

    def call(self, x):
        clipped = ops.clip(x, 0.0, 1.0)
        q = ops.round(clipped * self.levels) / self.levels
        through = clipped if self.gradient == "clipped" else x
        rounded = through + ops.stop_gradient(q - through)
        return ops.where(ops.cast(self.enabled, "float32") > 0.5, rounded, x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "levels": self.levels,
            "enabled": self.initially_enabled,
            "gradient": self.gradient,
        }


@register_layer
class EdgePadConv2D(keras.layers.Conv2D):
    """Conv2D whose 'same' padding replicates edge pixels (MATLAB's/SRCNN's 'replicate').

    The official SRCNN code pads this way; zero padding costs it about 3 dB.  Any
    Conv2D argument is accepted; ``padding`` is always 'valid' after the edge pad.
    """

    def __init__(self, *args, **kwargs):
        kwargs["padding"] = "valid"
        super().__init__(*args, **kwargs)

    def _edge_pad(self, x, axis, before, after):
        if before == 0 and after == 0:
            return x
        size = ops.shape(x)[axis]
        idx = ops.clip(ops.arange(-before, size + after), 0, size - 1)
        return ops.take(x, idx, axis=axis)

    def call(self, x):
        for axis, (k, d) in zip((1, 2), zip(self.kernel_size, self.dilation_rate)):
            total = (k - 1) * d
            x = self._edge_pad(x, axis, total // 2, total - total // 2)
        return super().call(x)

    def compute_output_shape(self, input_shape):
        # 'same' semantics: each spatial size becomes ceil(size / stride)
        n, h, w, _ = input_shape

        def size(v, s):
            return None if v is None else -(-int(v) // int(s))

        return (n, size(h, self.strides[0]), size(w, self.strides[1]), self.filters)


# Full-range BT.601 luma (JPEG YCbCr): Y in [0, 1] for RGB in [0, 1], the colour TAD models' grey guide.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


@register_layer
class Luma(keras.layers.Layer):
    """RGB -> full-range luma ``0.299 R + 0.587 G + 0.114 B`` (one channel, no weights)."""

    def call(self, x):
        w = ops.convert_to_tensor(LUMA_WEIGHTS, dtype=x.dtype)
        return ops.sum(x * w, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1,)


@register_layer
class ChannelSlice(keras.layers.Layer):
    """Channels ``start:stop`` of an NHWC tensor (one half of ``torch.split`` along channels).

    IMDN's progressive refinement splits every 64-channel map into 16 distilled and 48
    remaining channels; two ChannelSlice links express that split in a spec.
    """

    def __init__(self, start=0, stop=None, **kwargs):
        super().__init__(**kwargs)
        self.start = int(start)
        self.stop = None if stop is None else int(stop)
        if self.start < 0 or (self.stop is not None and self.stop <= self.start):
            from visionfw.errors import SpecError

            raise SpecError(
                f"ChannelSlice(start={start}, stop={stop}): need 0 <= start < stop "
                "(stop=None keeps every channel from start on)."
            )

    def call(self, x):
        return x[..., self.start : self.stop]

    def compute_output_shape(self, input_shape):
        c = input_shape[-1]
        stop = c if self.stop is None else (self.stop if c is None else min(self.stop, c))
        return tuple(input_shape[:-1]) + (None if stop is None else stop - self.start,)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


@register_layer
class ContrastPool(keras.layers.Layer):
    """Per-channel contrast of IMDN's CCA: std + mean over H and W, shape (N, 1, 1, C).

    The standard deviation is the population one (divided by H*W), as in the official
    ``stdv_channels``.  ``epsilon`` (default 0, exact) is added to the variance before the
    square root; a small value keeps gradients finite on constant feature maps.
    """

    def __init__(self, epsilon=0.0, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2), keepdims=True)
        var = ops.mean(ops.square(x - mean), axis=(1, 2), keepdims=True)
        return ops.sqrt(var + self.epsilon) + mean

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, 1, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BilinearKernel(keras.initializers.Initializer):
    """Bilinear-upsampling kernel for a ``Conv2DTranspose`` of shape (kh, kw, out, in).

    Channel ``c`` maps to channel ``c`` only (zero across channels), each with the separable
    bilinear filter ``1 - |x / f - centre|``, ``f = ceil(k / 2)`` (FCN's and MatConvNet's
    ``bilinear_kernel``); LapSRN initialises its image branch this way.  Use it as
    ``kernel_initializer='visionfw>BilinearKernel'``.
    """

    def __call__(self, shape, dtype=None):
        import math

        import numpy as np

        kh, kw, c_out, c_in = (int(s) for s in shape)

        def taps(k):
            f = math.ceil(k / 2)
            centre = (2 * f - 1 - f % 2) / (2.0 * f)
            return 1.0 - np.abs(np.arange(k) / f - centre)

        kernel = np.zeros((kh, kw, c_out, c_in), np.float32)
        for c in range(min(c_out, c_in)):
            kernel[:, :, c, c] = np.outer(taps(kh), taps(kw))
        return ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self):
        return {}


@register_layer
class ChannelPool(keras.layers.Layer):
    """Mean and max over channels: (N, H, W, C) -> (N, H, W, 2), no weights.

    The input of CBAM-style spatial attention: a small convolution of these two maps gives one
    attention map for every channel (BSR's light spatial attention, ``lsa_resblock``).
    """

    def call(self, x):
        return ops.concatenate([ops.mean(x, axis=-1, keepdims=True), ops.max(x, axis=-1, keepdims=True)], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2,)


# ----------------------------------------------------------------------------- GAN discriminators


def _l2_normalize(v, eps=1e-12):
    return v / (ops.sqrt(ops.sum(ops.square(v))) + eps)


@register_layer
class SpectralConv2D(keras.layers.Conv2D):
    """Conv2D with spectral normalisation (Miyato et al., ICLR 2018), as PyTorch's ``spectral_norm``.

    The stored kernel ``W`` is trained; the convolution uses ``W / sigma(W)``, with ``sigma`` the
    largest singular value of ``W`` reshaped to ``(k*k*c_in, c_out)``, estimated by
    ``power_iterations`` steps of the power method from a persistent vector ``u``.  As in PyTorch,
    ``u`` advances only in training calls and gradients flow through ``sigma`` but not through
    ``u``/``v``.  (Keras' ``SpectralNormalization`` wrapper instead overwrites the trained kernel in
    place and takes a layer object, which a spec cannot hold.)
    """

    def __init__(self, *args, power_iterations=1, **kwargs):
        super().__init__(*args, **kwargs)
        if int(power_iterations) < 1:
            raise ValueError(f"power_iterations={power_iterations} must be >= 1.")
        self.power_iterations = int(power_iterations)

    def build(self, input_shape):
        super().build(input_shape)
        # 'mean': replicas compute the same u from the same mirrored kernel; the mean keeps it so
        self.u = self.add_weight(
            name="sn_u",
            shape=(1, self.filters),
            trainable=False,
            aggregation="mean",
            initializer=keras.initializers.RandomNormal(stddev=1.0),
        )

    def normalized_kernel(self, training=False):
        """``W / sigma(W)``; a training call also stores the advanced power-iteration vector."""
        w = ops.reshape(self.kernel, (-1, self.filters))
        u = ops.cast(self.u, w.dtype)
        for _ in range(self.power_iterations):
            v = _l2_normalize(ops.matmul(u, ops.transpose(w)))
            u = _l2_normalize(ops.matmul(v, w))
        u, v = ops.stop_gradient(u), ops.stop_gradient(v)
        if training:
            self.u.assign(ops.cast(u, self.u.dtype))
        sigma = ops.sum(ops.matmul(v, w) * u)
        return self.kernel / sigma

    def call(self, inputs, training=False):
        kernel = ops.cast(self.normalized_kernel(training), inputs.dtype)
        outputs = self.convolution_op(inputs, kernel)
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, outputs.dtype)
        return outputs if self.activation is None else self.activation(outputs)

    # Conv2D saves its kernel and bias alone; Layer's own methods save every variable, u included
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}


# ----------------------------------------------------------------------------- PyTorch-exact resampling


def _source_index(out_size, in_size, scale, align_corners):
    """PyTorch's source coordinate of every output pixel along one axis (float32, as its kernels)."""
    dst = ops.cast(ops.arange(out_size), "float32")
    if align_corners:
        ratio = ops.cast(in_size - 1, "float32") / ops.cast(ops.maximum(out_size - 1, 1), "float32")
        return dst * ratio
    # scale_factor given: PyTorch uses 1 / scale_factor (not in/out) as the step
    step = 1.0 / scale if scale is not None else ops.cast(in_size, "float32") / ops.cast(out_size, "float32")
    return ops.maximum((dst + 0.5) * step - 0.5, 0.0)


@register_layer
class Interpolate(keras.layers.Layer):
    """``torch.nn.functional.interpolate`` on NHWC tensors of any (unknown) size.

    ``mode='bilinear'`` (``align_corners`` False or True) or ``'nearest'`` (PyTorch's legacy
    nearest: source index ``floor(dst / scale)``).  The output size is ``floor(size * scale)``;
    called on two tensors ``[x, like]``, ``x`` is resized to the height and width of ``like``
    (``F.interpolate(x, size=like.shape[-2:])``), ``scale`` then unused.  A bilinear skip of
    lightweight SR models is ``g.upsample(x, 'Interpolate', scale=s, mode='bilinear')``.
    """

    def __init__(self, scale=2.0, mode="bilinear", align_corners=False, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("bilinear", "nearest"):
            from visionfw.errors import SpecError

            raise SpecError(f"Interpolate(mode={mode!r}): use 'bilinear' or 'nearest'.")
        if mode == "nearest" and align_corners:
            from visionfw.errors import SpecError

            raise SpecError(
                "Interpolate(mode='nearest', align_corners=True): PyTorch allows align_corners "
                "with the linear modes only."
            )
        self.scale = float(scale)
        self.mode = mode
        self.align_corners = bool(align_corners)

    def _resample(self, x, axis, out_size, scale):
        in_size = ops.shape(x)[axis]
        if self.mode == "nearest":
            step = 1.0 / scale if scale is not None else ops.cast(in_size, "float32") / ops.cast(out_size, "float32")
            src = ops.floor(ops.cast(ops.arange(out_size), "float32") * step)
            idx = ops.minimum(ops.cast(src, "int32"), in_size - 1)
            return ops.take(x, idx, axis=axis)
        src = _source_index(out_size, in_size, scale, self.align_corners)
        low = ops.minimum(ops.cast(ops.floor(src), "int32"), in_size - 1)
        high = ops.minimum(low + 1, in_size - 1)
        frac = src - ops.cast(low, "float32")
        shape = [1, 1, 1, 1]
        shape[axis] = -1
        frac = ops.cast(ops.reshape(frac, shape), x.dtype)
        return ops.take(x, low, axis=axis) * (1.0 - frac) + ops.take(x, high, axis=axis) * frac

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            x, like = inputs
            sizes, scale = (ops.shape(like)[1], ops.shape(like)[2]), None
        else:
            x, scale = inputs, self.scale
            shape = ops.shape(x)
            sizes = tuple(ops.cast(ops.floor(ops.cast(shape[a], "float32") * scale), "int32") for a in (1, 2))
        x = self._resample(x, 1, sizes[0], scale)
        return self._resample(x, 2, sizes[1], scale)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            (n, _, _, c), like = input_shape
            return (n, like[1], like[2], c)
        n, h, w, c = input_shape
        return (n, None if h is None else int(h * self.scale), None if w is None else int(w * self.scale), c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "mode": self.mode, "align_corners": self.align_corners}
