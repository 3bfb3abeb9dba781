"""Custom layers against hand-worked or independent references."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionfw.zoo import layers as L


def _rand(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_pixel_shuffle_tf_order_is_depth_to_space():
    x = _rand((2, 3, 5, 12))
    np.testing.assert_array_equal(np.asarray(L.PixelShuffle(2)(x)), tf.nn.depth_to_space(x, 2).numpy())


def test_pixel_shuffle_torch_order_by_hand():
    # PyTorch: out[c, h*r+i, w*r+j] = in[c*r*r + i*r + j, h, w]
    r, c = 3, 2
    x = _rand((1, 2, 2, c * r * r))
    y = np.asarray(L.PixelShuffle(r, order="torch")(x))
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                np.testing.assert_array_equal(y[0, i::r, j::r, ch], x[0, :, :, ch * r * r + i * r + j])


@pytest.mark.parametrize("order", ["tf", "torch"])
def test_unshuffle_inverts_shuffle(order):
    x = _rand((2, 6, 4, 3))
    down = L.PixelUnshuffle(2, order=order)(x)
    assert down.shape == (2, 3, 2, 12)
    np.testing.assert_array_equal(np.asarray(L.PixelShuffle(2, order=order)(down)), x)


def test_pixel_shuffle_bad_order_is_spec_error():
    from visionfw.errors import SpecError

    with pytest.raises(SpecError, match="order"):
        L.PixelShuffle(2, order="caffe")


def test_edge_pad_conv_equals_numpy_edge_pad_then_valid_conv():
    x = _rand((1, 7, 6, 2))
    layer = L.EdgePadConv2D(filters=3, kernel_size=5)
    y = np.asarray(layer(x))
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    ref = tf.nn.conv2d(padded, layer.kernel, 1, "VALID").numpy() + layer.bias.numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    assert y.shape == (1, 7, 6, 3)


@pytest.mark.parametrize(
    "gradient, expected", [("clipped", [1.0, 2.0, 3.0, 0.0, 0.0]), ("identity", [1.0, 2.0, 3.0, 4.0, 5.0])]
)
def test_quantize_rounds_and_passes_gradient_straight_through(gradient, expected):
    """Rounding passes the gradient straight through; past [0, 1] only the 'identity' variant does."""
    layer = L.Quantize(gradient=gradient)
    x = tf.constant([[0.1001, 0.5, 0.99999, 1.2, -0.3]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.constant([[1.0, 2.0, 3.0, 4.0, 5.0]]))
    np.testing.assert_allclose(y.numpy(), np.round(np.clip(x.numpy(), 0, 1) * 255) / 255, atol=1e-7)
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), [expected])
    layer.enabled.assign(0.0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    np.testing.assert_allclose(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), np.ones((1, 5)))


def test_channel_attention_by_hand():
    x = _rand((1, 4, 4, 32))
    layer = L.ChannelAttention(reduction=16)
    y = np.asarray(layer(x))
    w1, b1 = layer.down.kernel.numpy(), layer.down.bias.numpy()
    w2, b2 = layer.up.kernel.numpy(), layer.up.bias.numpy()
    pooled = x.mean(axis=(1, 2))
    att = 1 / (1 + np.exp(-(np.maximum(pooled @ w1 + b1, 0) @ w2 + b2)))
    np.testing.assert_allclose(y, x * att[:, None, None, :], rtol=1e-5)
    assert layer.count_params() == 32 * 2 + 2 + 2 * 32 + 32


def test_mean_shift_and_scale():
    x = _rand((1, 2, 2, 3))
    sub = L.MeanShift(mean=(0.5, 0.25, 0.0), sign=-1)
    add = L.MeanShift(mean=(0.5, 0.25, 0.0), sign=1)
    np.testing.assert_allclose(np.asarray(sub(x)), x - [0.5, 0.25, 0.0], atol=1e-7)
    np.testing.assert_allclose(np.asarray(add(sub(x))), x, atol=1e-7)
    np.testing.assert_allclose(np.asarray(L.Scale(0.1)(x)), x * 0.1, rtol=1e-6)


def test_weighted_sum_starts_as_mean():
    a, b = _rand((1, 2, 2, 1), 1), _rand((1, 2, 2, 1), 2)
    np.testing.assert_allclose(np.asarray(L.WeightedSum()([a, b])), (a + b) / 2, rtol=1e-6)


@pytest.mark.parametrize(
    "layer",
    [
        L.PixelShuffle(3, order="torch"),
        L.PixelUnshuffle(2),
        L.MeanShift(sign=1),
        L.Scale(0.5, trainable_scale=True),
        L.ChannelAttention(4),
        L.Quantize(enabled=False),
        L.EdgePadConv2D(filters=2, kernel_size=3),
    ],
    ids=lambda ly: type(ly).__name__,
)
def test_layers_serialize_with_safe_mode(layer, tmp_path):
    channels = 18 if isinstance(layer, L.PixelShuffle) else 3 if isinstance(layer, L.MeanShift) else 4
    inp = keras.Input((None, None, channels))
    model = keras.Model(inp, layer(inp))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = _rand((1, 6, 4, inp.shape[-1]))
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))
    assert type(loaded.layers[-1]) is type(layer)
