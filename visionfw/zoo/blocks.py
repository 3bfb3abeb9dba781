"""The shared blocks: the ones several zoo families (and your own specs) use.

A block only one family uses is defined and registered in that family's file.

A block function takes ``(inputs, name=..., **params)``: ``inputs`` is the list of
input tensors of its link, ``name`` a unique prefix for the layers it creates.
Layers come from :func:`visionfw.zoo.parts.make_layer`, so the spec's ``defaults``
(e.g. ``{'Conv2D': {'kernel_size': 3, 'padding': 'same'}}``) reach inside blocks.
"""

import keras

from visionfw.errors import SpecError
from visionfw.zoo.parts import input_channels, make_layer, register_block


def _conv(name, **kwargs):
    return make_layer("Conv2D", name=name, **kwargs)


def _one(inputs):
    return inputs[0] if isinstance(inputs, (list, tuple)) else inputs


@register_block("conv")
def conv(inputs, name, filters=None, kernel_size=None, activation=None):
    """One convolution; ``filters``/``kernel_size`` fall back to the Conv2D defaults."""
    kw = {k: v for k, v in (("filters", filters), ("kernel_size", kernel_size)) if v is not None}
    if activation is not None:
        kw["activation"] = activation
    return _conv(name, **kw)(_one(inputs))


@register_block("conv_relu")
def conv_relu(inputs, name, filters=None, kernel_size=None):
    """Convolution followed by ReLU (VDSR's and SRCNN's hidden layers)."""
    kw = {k: v for k, v in (("filters", filters), ("kernel_size", kernel_size)) if v is not None}
    return _conv(name, activation="relu", **kw)(_one(inputs))


@register_block("conv_out")
def conv_out(inputs, name, filters=None, kernel_size=None):
    """Linear convolution back to the model's input channels (or ``filters``)."""
    filters = filters or input_channels()
    kw = {"kernel_size": kernel_size} if kernel_size is not None else {}
    return _conv(name, filters=filters, activation=None, **kw)(_one(inputs))


@register_block("resblock")
def resblock(inputs, name, filters=None, res_scale=1.0):
    """EDSR residual block: x + res_scale * conv(relu(conv(x))), no batch norm."""
    x = _one(inputs)
    filters = filters or x.shape[-1]
    y = _conv(f"{name}_conv1", filters=filters, activation="relu")(x)
    y = _conv(f"{name}_conv2", filters=filters, activation=None)(y)
    if res_scale != 1.0:
        y = make_layer("Scale", value=res_scale, name=f"{name}_scale")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def upsample_factors(scale):
    """How a sub-pixel upsampler reaches ``scale``: powers of two by x2 steps, 3 in one step."""
    scale = int(scale)
    if scale in (1,):
        return []
    if scale & (scale - 1) == 0:
        return [2] * (scale.bit_length() - 1)
    if scale == 3:
        return [3]
    raise SpecError(f"upsampler: scale {scale} is not supported; use 2, 3, 4, 8 (powers of two) or 3.")


@register_block("upsampler")
def upsampler(inputs, name, scale=2, filters=None, activation=None, order="tf"):
    """EDSR/SRResNet upsampler: for each factor r, conv to filters*r*r then PixelShuffle(r).

    ``activation='prelu'`` adds SRResNet's PReLU after each shuffle.
    """
    x = _one(inputs)
    filters = filters or x.shape[-1]
    for k, r in enumerate(upsample_factors(scale)):
        x = _conv(f"{name}_conv{k}", filters=filters * r * r, activation=None)(x)
        x = make_layer("PixelShuffle", scale=r, order=order, name=f"{name}_shuffle{k}")(x)
        if activation == "prelu":
            x = make_layer("PReLU", shared_axes=[1, 2], name=f"{name}_prelu{k}")(x)
        elif activation is not None:
            x = make_layer("Activation", activation=activation, name=f"{name}_act{k}")(x)
    return x
