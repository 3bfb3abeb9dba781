"""Your own published model, written as a dict, its PyTorch checkpoint loaded with a plain load_weights.

Three published architectures the zoo does not have, each beside a PyTorch twin written after the
authors' code (random weights, ``torch.save`` of its ``state_dict`` standing in for the official file):

* CARN (Ahn et al., ECCV 2018): cascading residual blocks, conv -> ReLU -> PixelShuffle, built here
  with ``order='tf'``, so the upsampling conv's channels are reordered at load time;
* CARN-M (same paper): grouped convs (groups=4), one residual block applied three times per cascade
  block (shared weights), and a *grouped* conv -> ReLU -> PixelShuffle, which only ``order='torch'``
  loads exactly (``order='tf'`` is refused);
* PAN (Zhao et al., ECCVW 2020): pixel attention, nearest upsampling and a bilinear skip of the input
  (``F.interpolate(..., align_corners=False)``), written without layer names: it pairs by written order.

Then every combination the importer cannot convert is a WeightsError, and the combinations it can are
checked against small PyTorch twins.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import keras  # noqa: E402

import visionfw  # noqa: E402
from visionfw.errors import SpecError, WeightsError  # noqa: E402
from visionfw.weights import load_weights, plan_state_dict  # noqa: E402
from visionfw.zoo.graph import Graph  # noqa: E402

CARN_MEAN = (0.4488, 0.4371, 0.4040)


def _seed_all(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:  # not CARN's frozen mean shift
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return module


def _torch_out(module, x):
    with torch.no_grad():
        return module(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()


def _save(module, path):
    torch.save(module.state_dict(), path)
    return path


# --------------------------------------------------------------------------- CARN / CARN-M (PyTorch twins)


class MeanShift(nn.Module):
    """CARN's ops.MeanShift: a frozen 1x1 conv (its keys are in DEFAULT_SKIP)."""

    def __init__(self, mean, sub):
        super().__init__()
        sign = -1 if sub else 1
        self.shifter = nn.Conv2d(3, 3, 1, 1, 0)
        self.shifter.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.shifter.bias.data = torch.tensor([m * sign for m in mean])
        for p in self.shifter.parameters():
            p.requires_grad = False

    def forward(self, x):
        return self.shifter(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, k=3, pad=1):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, k, 1, pad), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.body(x)


class ResidualBlock(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n, n, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(n, n, 3, 1, 1))

    def forward(self, x):
        return F.relu(self.body(x) + x)


class EResidualBlock(nn.Module):
    def __init__(self, n, group):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n, n, 3, 1, 1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(n, n, 3, 1, 1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(n, n, 1, 1, 0),
        )

    def forward(self, x):
        return F.relu(self.body(x) + x)


class UpsampleBlock(nn.Module):
    def __init__(self, n, scale, group):
        super().__init__()
        modules = []
        for _ in range({2: 1, 4: 2}[scale]):
            modules += [nn.Conv2d(n, 4 * n, 3, 1, 1, groups=group), nn.ReLU(inplace=True), nn.PixelShuffle(2)]
        self.body = nn.Sequential(*modules)

    def forward(self, x):
        return self.body(x)


class UpsampleWrapper(nn.Module):
    def __init__(self, n, scale, group):
        super().__init__()
        self.up = UpsampleBlock(n, scale, group)

    def forward(self, x):
        return self.up(x)


class CarnBlock(nn.Module):
    def __init__(self, n, mobile, group):
        super().__init__()
        if mobile:  # CARN-M: one efficient residual block, applied three times
            self.b1 = EResidualBlock(n, group)
        else:
            self.b1, self.b2, self.b3 = ResidualBlock(n), ResidualBlock(n), ResidualBlock(n)
        self.c1, self.c2, self.c3 = BasicBlock(2 * n, n, 1, 0), BasicBlock(3 * n, n, 1, 0), BasicBlock(4 * n, n, 1, 0)
        self.mobile = mobile

    def forward(self, x):
        blocks = [self.b1] * 3 if self.mobile else [self.b1, self.b2, self.b3]
        c, o = x, x
        for b, conv in zip(blocks, (self.c1, self.c2, self.c3)):
            c = torch.cat([c, b(o)], dim=1)
            o = conv(c)
        return o


class Carn(nn.Module):
    def __init__(self, n=8, scale=2, mobile=False):
        super().__init__()
        group = 4 if mobile else 1
        self.sub_mean, self.add_mean = MeanShift(CARN_MEAN, True), MeanShift(CARN_MEAN, False)
        self.entry = nn.Conv2d(3, n, 3, 1, 1)
        self.b1, self.b2, self.b3 = (CarnBlock(n, mobile, group) for _ in range(3))
        self.c1, self.c2, self.c3 = BasicBlock(2 * n, n, 1, 0), BasicBlock(3 * n, n, 1, 0), BasicBlock(4 * n, n, 1, 0)
        self.upsample = UpsampleWrapper(n, scale, group)
        self.exit = nn.Conv2d(n, 3, 3, 1, 1)

    def forward(self, x):
        x = self.entry(self.sub_mean(x))
        c, o = x, x
        for b, conv in zip((self.b1, self.b2, self.b3), (self.c1, self.c2, self.c3)):
            c = torch.cat([c, b(o)], dim=1)
            o = conv(c)
        return self.add_mean(self.exit(self.upsample(o)))


# --------------------------------------------------------------------------- CARN / CARN-M as dicts


def carn_spec(n=8, scale=2, mobile=False, order="tf"):
    """CARN / CARN-M with every layer named after its PyTorch module (dots kept)."""
    group = 4 if mobile else 1
    g = Graph(
        "CARN_M" if mobile else "CARN",
        inputs=[(None, None, 3)],
        defaults={"Conv2D": {"kernel_size": 3, "padding": "same"}},
    )

    def basic(x, name, filters):
        return g.conv(x, filters, 1, activation="relu", name=f"{name}.body.0")

    def residual(x, name, shared_from=None):
        """(output, the nodes of its three convs): a later call with ``shared_from`` reuses their weights."""
        if mobile:
            if shared_from is None:
                a = g.conv(x, n, groups=group, activation="relu", name=f"{name}.body.0")
                b = g.conv(a, n, groups=group, activation="relu", name=f"{name}.body.2")
                c = g.conv(b, n, 1, name=f"{name}.body.4")
            else:
                a = g.conv(x, share=shared_from[0])
                b = g.conv(a, share=shared_from[1])
                c = g.conv(b, share=shared_from[2])
            convs = (a, b, c)
        else:
            a = g.act(g.conv(x, n, name=f"{name}.body.0"), "relu")
            c = g.conv(a, n, name=f"{name}.body.2")
            convs = None
        return g.act(g.add(c, x), "relu"), convs

    def cascade(x, prefix, blocks):
        c, o, shared = x, x, None
        for k, conv in enumerate(("c1", "c2", "c3")):
            if blocks is None:  # CARN-M: b1 three times
                y, convs = residual(o, f"{prefix}.b1", shared)
                shared = shared or convs
            else:
                y, _ = residual(o, f"{prefix}.{blocks[k]}")
            c = g.concat(c, y)
            o = basic(c, f"{prefix}.{conv}", n)
        return o

    x = g.layer("MeanShift", g.input, mean=CARN_MEAN, sign=-1)
    x = g.conv(x, n, name="entry")
    c, o = x, x
    for b, conv in zip(("b1", "b2", "b3"), ("c1", "c2", "c3")):
        y = cascade(o, b, None if mobile else ("b1", "b2", "b3"))
        c = g.concat(c, y)
        o = basic(c, conv, n)
    for k in range({2: 1, 4: 2}[scale]):
        o = g.act(g.conv(o, 4 * n, groups=group, name=f"upsample.up.body.{3 * k}"), "relu")  # a separate ReLU
        o = g.shuffle(o, 2, order=order)
    x = g.conv(o, 3, name="exit")
    g.layer("MeanShift", x, mean=CARN_MEAN, sign=1)
    return g.spec(meta={"scale": scale, "channels": "rgb", "upsampled_input": False})


@pytest.mark.parametrize("mobile, order, scale", [(False, "tf", 2), (True, "torch", 2), (False, "tf", 4)])
def test_carn_and_carn_m_load_their_pytorch_twins_exactly(tmp_path, mobile, order, scale):
    twin = _seed_all(Carn(8, scale, mobile).eval(), 1 + int(mobile))
    path = _save(twin, tmp_path / "carn.pth")
    model = visionfw.build_model(carn_spec(8, scale, mobile, order))
    plan = plan_state_dict(model, visionfw.weights.read_state_dict(path))
    assert plan.ok, plan.problems
    assert plan.pairing_counts()["name"] == len(plan.entries)  # every module found its layer by name
    if order == "tf":  # the upsampling conv is reordered, through the ReLU between it and the shuffle
        assert "PixelShuffle torch->tf channel order (r=2)" in str(plan)
    load_weights(model, path)
    x = np.random.default_rng(0).random((1, 7, 9, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), _torch_out(twin, x), atol=1e-5)


def test_carn_m_grouped_upsampler_with_tf_order_is_refused(tmp_path):
    """The silently wrong case of the past: groups=4 conv -> ReLU -> PixelShuffle(order='tf')."""
    path = _save(_seed_all(Carn(8, 2, True).eval(), 2), tmp_path / "carn_m.pth")
    model = visionfw.build_model(carn_spec(8, 2, True, "tf"))
    before = model.get_layer("entry").kernel.numpy().copy()
    with pytest.raises(
        WeightsError,
        match=r"PixelShuffle .*order='tf'.*Conv2D 'upsample\.up\.body\.0': groups=4.*"
        r"Fix: build the model with order='torch'",
    ):
        load_weights(model, path)
    np.testing.assert_array_equal(model.get_layer("entry").kernel.numpy(), before)  # nothing assigned


# --------------------------------------------------------------------------- PAN


class PA(nn.Module):
    def __init__(self, nf):
        super().__init__()
        self.conv = nn.Conv2d(nf, nf, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(x))


class PAConv(nn.Module):
    def __init__(self, nf):
        super().__init__()
        self.k2 = nn.Conv2d(nf, nf, 1)
        self.k3 = nn.Conv2d(nf, nf, 3, padding=1, bias=False)
        self.k4 = nn.Conv2d(nf, nf, 3, padding=1, bias=False)

    def forward(self, x):
        return self.k4(self.k3(x) * torch.sigmoid(self.k2(x)))


class SCPA(nn.Module):
    def __init__(self, nf):
        super().__init__()
        gw = nf // 2
        self.conv1_a = nn.Conv2d(nf, gw, 1, bias=False)
        self.conv1_b = nn.Conv2d(nf, gw, 1, bias=False)
        self.k1 = nn.Sequential(nn.Conv2d(gw, gw, 3, 1, 1, bias=False))
        self.PAConv = PAConv(gw)
        self.conv3 = nn.Conv2d(nf, nf, 1, bias=False)

    def forward(self, x):
        a = F.leaky_relu(self.conv1_a(x), 0.2)
        b = F.leaky_relu(self.conv1_b(x), 0.2)
        a = F.leaky_relu(self.k1(a), 0.2)
        b = F.leaky_relu(self.PAConv(b), 0.2)
        return self.conv3(torch.cat([a, b], 1)) + x


class Pan(nn.Module):
    def __init__(self, nf=8, unf=8, nb=2, scale=2):
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.SCPA_trunk = nn.Sequential(*[SCPA(nf) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv1 = nn.Conv2d(nf, unf, 3, 1, 1)
        self.att1 = PA(unf)
        self.HRconv1 = nn.Conv2d(unf, unf, 3, 1, 1)
        self.conv_last = nn.Conv2d(unf, 3, 3, 1, 1)

    def forward(self, x):
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.SCPA_trunk(fea))
        fea = self.upconv1(F.interpolate(fea, scale_factor=self.scale, mode="nearest"))
        fea = F.leaky_relu(self.att1(fea), 0.2)
        fea = F.leaky_relu(self.HRconv1(fea), 0.2)
        return self.conv_last(fea) + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


def pan_spec(nf=8, unf=8, nb=2, scale=2):
    """PAN as a plain dict of links, no layer names: the state dict pairs in the written order."""
    g = Graph("PAN", inputs=[(None, None, 3)], defaults={"Conv2D": {"padding": "same"}})

    def lrelu(x):
        return g.act(x, "LeakyReLU", negative_slope=0.2)

    fea = g.conv(g.input, nf, 3)
    x = fea
    for _ in range(nb):
        a = lrelu(g.conv(x, nf // 2, 1, use_bias=False))
        b = lrelu(g.conv(x, nf // 2, 1, use_bias=False))
        a = lrelu(g.conv(a, nf // 2, 3, use_bias=False))
        attention = g.conv(b, nf // 2, 1, activation="sigmoid")
        b = lrelu(g.conv(g.multiply(g.conv(b, nf // 2, 3, use_bias=False), attention), nf // 2, 3, use_bias=False))
        x = g.add(g.conv(g.concat(a, b), nf, 1, use_bias=False), x)
    fea = g.add(fea, g.conv(x, nf, 3))
    up = g.conv(g.upsample(fea, "Interpolate", scale=scale, mode="nearest"), unf, 3)
    up = lrelu(g.multiply(up, g.conv(up, unf, 1, activation="sigmoid")))
    up = lrelu(g.conv(up, unf, 3))
    g.add(g.conv(up, 3, 3), g.upsample(g.input, "Interpolate", scale=scale, mode="bilinear"))
    return g.spec(meta={"scale": scale, "channels": "rgb", "upsampled_input": False})


@pytest.mark.parametrize("scale", [2, 3])
def test_pan_with_a_bilinear_skip_loads_its_pytorch_twin_in_written_order(tmp_path, scale):
    twin = _seed_all(Pan(scale=scale).eval(), 3)
    path = _save(twin, tmp_path / "pan.pth")
    spec = pan_spec(scale=scale)
    assert isinstance(spec, dict) and "Interpolate" in spec["upsample_sub"]
    model = visionfw.build_model(spec)
    # Keras lists the layers by graph depth, which is not the order PAN was written in
    keras_order = [layer.name for layer in model.layers if layer.weights]
    plan = plan_state_dict(model, visionfw.weights.read_state_dict(path))
    assert plan.ok and plan.pairing_counts()["order"] == len(plan.entries)
    assert [e.label for e in plan.entries] != keras_order
    load_weights(model, path)
    x = np.random.default_rng(1).random((1, 6, 11, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), _torch_out(twin, x), atol=1e-5)
    # unknown input sizes: one traced function for every image size
    run = keras.backend.backend() == "tensorflow" and __import__("tensorflow").function(
        model, input_signature=[__import__("tensorflow").TensorSpec((None, None, None, 3))]
    )
    y = np.random.default_rng(2).random((1, 5, 4, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(run(y)), _torch_out(twin, y), atol=1e-5)


# --------------------------------------------------------------------------- Interpolate == F.interpolate


@pytest.mark.parametrize(
    "mode, align_corners, scale",
    [
        ("bilinear", False, 2),
        ("bilinear", True, 2),
        ("bilinear", False, 3),
        ("nearest", False, 3),
        ("bilinear", True, 4),
        ("nearest", False, 2),
    ],
)
def test_interpolate_equals_torch_on_unknown_sizes(mode, align_corners, scale):
    import tensorflow as tf

    layer = visionfw.zoo.layers.Interpolate(scale=scale, mode=mode, align_corners=align_corners)
    run = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 2))])
    for h, w in ((5, 7), (1, 3), (8, 8)):
        x = np.random.default_rng(h * w).random((1, h, w, 2), dtype=np.float32)
        ref = F.interpolate(
            torch.from_numpy(x).permute(0, 3, 1, 2),
            scale_factor=scale,
            mode=mode,
            **({"align_corners": align_corners} if mode == "bilinear" else {}),
        )
        np.testing.assert_allclose(np.asarray(run(x)), ref.permute(0, 2, 3, 1).numpy(), atol=1e-6)


def test_interpolate_to_the_size_of_another_tensor():
    x = np.random.default_rng(0).random((1, 3, 4, 2), dtype=np.float32)
    like = np.zeros((1, 7, 10, 5), np.float32)
    for align in (False, True):
        out = visionfw.zoo.layers.Interpolate(mode="bilinear", align_corners=align)([x, like])
        ref = F.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=(7, 10), mode="bilinear", align_corners=align)
        np.testing.assert_allclose(np.asarray(out), ref.permute(0, 2, 3, 1).numpy(), atol=1e-6)


def test_bilinear_upsampling2d_is_refused_at_validation_with_the_fix():
    g = Graph("bad", inputs=[(None, None, 3)])
    g.upsample(g.conv(g.input, 4, 3, padding="same"), size=2, interpolation="bilinear")
    with pytest.raises(
        SpecError,
        match=r"UpSampling2D\(interpolation='bilinear'\) fails on inputs of unknown size.*"
        r"'Interpolate', scale=2, mode='bilinear'",
    ):
        g.spec()


# --------------------------------------------------------------------------- what converts, what is refused


def _conv(cin, cout, k=3, groups=1, bias=True):
    return nn.Conv2d(cin, cout, k, 1, k // 2, groups=groups, bias=bias)


class _Twin(nn.Module):
    def __init__(self, forward, **modules):
        super().__init__()
        for name, m in modules.items():
            setattr(self, name, m)
        self._forward = forward

    def forward(self, x):
        return self._forward(self, x)


def _case_relu_bn_prelu():
    """conv -> ReLU -> BN -> PReLU (per channel) -> shuffle."""
    twin = _Twin(
        lambda m, x: F.pixel_shuffle(m.act(m.bn(F.relu(m.conv(x)))), 2),
        conv=_conv(3, 12),
        bn=nn.BatchNorm2d(12),
        act=nn.PReLU(12),
    )
    g = Graph("relu_bn_prelu", inputs=[(None, None, 3)])
    x = g.act(g.conv(g.input, 12, 3, padding="same", name="conv"), "relu")
    x = g.act(g.norm(x, name="bn"), "PReLU", shared_axes=[1, 2], name="act")
    g.shuffle(x, 2)
    return twin, g


def _case_add_of_two_convs():
    """add(conv a, conv b) with a fused activation -> shuffle: both convs reordered."""
    twin = _Twin(lambda m, x: F.pixel_shuffle(torch.tanh(m.a(x)) + m.b(x), 2), a=_conv(3, 12), b=_conv(3, 12, 1))
    g = Graph("add", inputs=[(None, None, 3)])
    g.shuffle(
        g.add(g.conv(g.input, 12, 3, padding="same", activation="tanh", name="a"), g.conv(g.input, 12, 1, name="b")), 2
    )
    return twin, g


def _case_depthwise():
    """conv -> depthwise conv (groups = channels) -> scale -> shuffle: the order passes back to the first conv."""
    twin = _Twin(lambda m, x: F.pixel_shuffle(0.5 * m.dw(m.conv(x)), 2), conv=_conv(3, 12), dw=_conv(12, 12, 3, 12))
    g = Graph("depthwise", inputs=[(None, None, 3)])
    x = g.conv(g.conv(g.input, 12, 3, padding="same", name="conv"), 12, 3, padding="same", groups=12, name="dw")
    g.shuffle(g.layer("Scale", x, value=0.5), 2)
    return twin, g


def _case_unshuffle():
    """PixelUnshuffle(order='tf') -> conv: the conv's input channels are reordered."""
    twin = _Twin(lambda m, x: m.conv(F.pixel_unshuffle(x, 2)), conv=_conv(12, 5))
    g = Graph("unshuffle", inputs=[(None, None, 3)])
    g.conv(g.unshuffle(g.input, 2), 5, 3, padding="same", name="conv")
    return twin, g


@pytest.mark.parametrize("case", [_case_relu_bn_prelu, _case_add_of_two_convs, _case_depthwise, _case_unshuffle])
def test_tf_order_shuffles_convert_exactly_through_per_channel_layers(tmp_path, case):
    twin, g = case()
    twin = _seed_all(twin.eval(), 4)
    if hasattr(twin, "bn"):
        with torch.no_grad():
            twin.bn.running_mean.uniform_(-0.5, 0.5)
            twin.bn.running_var.uniform_(0.5, 2.0)
    path = _save(twin, tmp_path / "twin.pth")
    model = visionfw.build_model(g.spec())
    load_weights(model, path)
    x = np.random.default_rng(5).random((1, 6, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), _torch_out(twin, x), atol=1e-5)


def _refused_specs():
    """(id, spec, PyTorch state dict, what the error names)."""
    rng = np.random.default_rng(0)

    def conv(prefix, cout, cin, k=3, groups=1):
        return {
            f"{prefix}.weight": rng.standard_normal((cout, cin // groups, k, k)).astype(np.float32),
            f"{prefix}.bias": np.zeros(cout, np.float32),
        }

    cases = []
    g = Graph("grouped", inputs=[(None, None, 4)])
    g.shuffle(g.act(g.conv(g.input, 12, 3, padding="same", groups=4, name="up"), "relu"), 2)
    cases.append(("grouped conv, ReLU, shuffle", g.spec(), conv("up", 12, 4, groups=4), r"Conv2D 'up': groups=4"))

    g = Graph("fan_out", inputs=[(None, None, 3)])
    a = g.conv(g.input, 12, 3, padding="same", name="a")
    g.output(g.shuffle(g.act(a, "relu"), 2), g.conv(a, 2, 1, name="side"))
    cases.append(
        (
            "conv used elsewhere",
            g.spec(),
            {**conv("a", 12, 3), **conv("side", 2, 12, 1)},
            r"Conv2D 'a': its output is also used elsewhere",
        )
    )

    g = Graph("concat", inputs=[(None, None, 3)])
    g.shuffle(
        g.concat(g.conv(g.input, 8, 3, padding="same", name="a"), g.conv(g.input, 4, 3, padding="same", name="b")), 2
    )
    cases.append(
        (
            "concatenation",
            g.spec(),
            {**conv("a", 8, 3), **conv("b", 4, 3)},
            r"Concatenate .*does not act on each channel in place",
        )
    )

    g = Graph("shared", inputs=[(None, None, 12)])
    first = g.conv(g.input, 12, 3, padding="same", name="c")
    g.shuffle(g.conv(first, share=first), 2)
    cases.append(("shared conv", g.spec(), conv("c", 12, 12), r"Conv2D 'c': the layer is shared \(2 calls\)"))

    g = Graph("from_input", inputs=[(None, None, 12)])
    g.shuffle(g.add(g.input, g.conv(g.input, 12, 3, padding="same", name="c")), 2)
    cases.append(("model input", g.spec(), conv("c", 12, 12), r"the channels come from the model's input"))

    g = Graph("broadcast", inputs=[(None, None, 3)])
    x = g.conv(g.input, 12, 3, padding="same", name="c")
    g.shuffle(g.multiply(x, g.conv(g.input, 1, 1, activation="sigmoid", name="gate")), 2)
    cases.append(
        ("broadcast multiply", g.spec(), {**conv("c", 12, 3), **conv("gate", 1, 3, 1)}, r"Multiply .*different shapes")
    )

    g = Graph("multiplier", inputs=[(None, None, 6)])
    g.shuffle(g.conv(g.input, cls="DepthwiseConv2D", kernel_size=3, padding="same", depth_multiplier=2, name="dw"), 2)
    cases.append(("depth multiplier", g.spec(), conv("dw", 12, 6, groups=6), r"depth_multiplier=2"))

    g = Graph("unshuffle_concat", inputs=[(None, None, 3)])
    u = g.unshuffle(g.input, 2)
    g.conv(g.concat(u, g.conv(u, 4, 1, name="a")), 4, 3, padding="same", name="b")
    cases.append(
        (
            "unshuffle into a concatenation",
            g.spec(),
            {**conv("a", 4, 12, 1), **conv("b", 4, 16)},
            r"PixelUnshuffle .*Concatenate .*reads the reordered channels",
        )
    )
    return cases


@pytest.mark.parametrize("case", _refused_specs(), ids=lambda c: c[0])
def test_every_combination_the_importer_cannot_convert_is_refused(case):
    _, spec, state, names = case
    model = visionfw.build_model(spec)
    with pytest.raises(WeightsError, match=names + r".*Fix: build the model with order='torch'"):
        visionfw.weights.load_state_dict(model, state)
    # with the layer in PyTorch's order there is nothing to reorder: the same weights load
    torch_spec = {**spec, "shuffle_par": [dict(p, order="torch") for p in spec["shuffle_par"]]}
    visionfw.weights.load_state_dict(visionfw.build_model(torch_spec), state)


# --------------------------------------------------------------------------- pairing messages


def test_a_misfit_pair_says_how_it_was_paired_and_never_suggests_skipping_it():
    g = Graph("two", inputs=[(None, None, 3)])
    g.conv(g.conv(g.input, 8, 3, padding="same", name="head"), 3, 3, padding="same", name="tail")
    model = visionfw.build_model(g.spec())
    rng = np.random.default_rng(0)
    state = {
        "head.weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "head.bias": np.zeros(8, np.float32),
        "body.weight": rng.standard_normal((3, 8, 3, 3)).astype(np.float32),
    }  # bias missing
    with pytest.raises(WeightsError) as err:
        visionfw.weights.load_state_dict(model, state)
    text = str(err.value)
    assert "'body'" in text and "paired by the spec's written order (no Keras layer is named 'body')" in text
    assert "name the Keras layer after the module" in text and "skip=[" not in text
    assert "paired by name (Keras layer named after the module) (1): 1:head" in str(plan_state_dict(model, state))


def test_unknown_layer_class_says_how_to_register_one():
    spec = {"name": "m", "layer": [(0, 1)], "layer_sub": ["MyOwnLayer"]}
    with pytest.raises(SpecError, match=r"unknown class 'MyOwnLayer'.*@visionfw.register_layer.*--import=module"):
        visionfw.validate_spec(spec)


def test_register_layer_as_decorator_and_call():
    @visionfw.register_layer
    class TimesTwoForTest(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    class PlusOneForTest(keras.layers.Layer):
        def call(self, x):
            return x + 1.0

    assert visionfw.register_layer(PlusOneForTest, name="PlusOneRenamed") is PlusOneForTest
    model = visionfw.build_model(
        {"name": "m", "inputs": [(2,)], "layer": [(0, 1), (1, 2)], "layer_sub": ["TimesTwoForTest", "PlusOneRenamed"]}
    )
    np.testing.assert_allclose(np.asarray(model(np.ones((1, 2), np.float32))), 3.0)
    with pytest.raises(SpecError, match="keras.layers.Layer subclass"):
        visionfw.register_layer(int)


def test_import_visionfw_exposes_weights_lazily():
    code = (
        "import sys, visionfw; assert 'visionfw.weights.loader' not in sys.modules; "
        "assert 'tensorflow' not in sys.modules; print(visionfw.weights.describe_mapping.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "describe_mapping"


# --------------------------------------------------------------------------- the command line


MY_MODELS = '''
import keras
import visionfw
from visionfw.zoo.graph import Graph


@visionfw.register_layer
class HalfGain(keras.layers.Layer):
    """A layer of the user's own: multiplies by 0.5."""

    def call(self, x):
        return 0.5 * x


def my_net(scale=2, filters=8):
    g = Graph("my_net", inputs=[(None, None, 3)], defaults={"Conv2D": {"padding": "same"}})
    x = g.conv(g.input, filters, 3, activation="relu", name="body.0")
    x = g.layer("HalfGain", g.conv(x, 3 * scale * scale, 3, name="body.2"))
    g.shuffle(x, scale, order="torch")
    return g.spec(meta={"scale": scale, "channels": "rgb", "upsampled_input": False})
'''


def _cli(args, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run(
        [sys.executable, "-m", "visionfw.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture
def user_project(tmp_path):
    (tmp_path / "my_models.py").write_text(textwrap.dedent(MY_MODELS))
    twin = nn.Sequential()
    twin.body = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 12, 3, 1, 1))
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.3)
    torch.save(twin.state_dict(), tmp_path / "my_net.pth")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    from PIL import Image

    for k in range(2):
        Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(images / f"im{k}.png")
    return tmp_path


def test_cli_runs_a_users_model_function_and_a_keras_file_after_import(user_project):
    args = [
        "--weights=my_net.pth",
        "--scale=2",
        f"--test_data={user_project / 'images'}",
        "--noprogress",
        "--results=r.json",
    ]
    out = _cli(["test", "--model=my_models.py:my_net", "--model_kwargs=filters=8"] + args, user_project)
    assert out.returncode == 0, out.stderr
    assert "my_models.py:my_net x2 (my_net.pth)" in out.stdout
    assert "protocol: srcnn (auto: not a registry model" in out.stdout
    import json

    via_file = json.loads((user_project / "r.json").read_text())
    # the same model by module name, then saved as .keras and loaded back with --import
    loaded = visionfw.load_model(f"{user_project / 'my_models.py'}:my_net", weights=user_project / "my_net.pth")
    loaded.model.save(user_project / "my_net.keras")
    missing = _cli(
        ["test", "--weights=my_net.keras", "--scale=2", f"--test_data={user_project / 'images'}"], user_project
    )
    assert missing.returncode == 1 and "--import=" in missing.stderr and "HalfGain" in missing.stderr
    out = _cli(
        [
            "test",
            "--weights=my_net.keras",
            "--import=my_models",
            "--scale=2",
            "--noprogress",
            f"--test_data={user_project / 'images'}",
            "--results=k.json",
        ],
        user_project,
    )
    assert out.returncode == 0, out.stderr
    via_keras = json.loads((user_project / "k.json").read_text())
    psnr = [r["psnr"] for r in via_file["results"].values()]
    assert psnr == [r["psnr"] for r in via_keras["results"].values()] and 5 < psnr[0] < 60


def test_upscale_runs_a_users_model_function(user_project):
    """`visionfw upscale` takes the same --model=file.py:function route as test/export/describe."""
    from PIL import Image

    out = _cli(
        [
            "upscale",
            "--model=my_models.py:my_net",
            "--model_kwargs=filters=8",
            "--weights=my_net.pth",
            "--scale=2",
            "--input=images/im0.png",
            "--output=up.png",
            "--noprogress",
        ],
        user_project,
    )
    assert out.returncode == 0, out.stderr
    assert "my_models.py:my_net (my_net.pth)" in out.stdout
    up = np.asarray(Image.open(user_project / "up.png"))
    lr = np.asarray(Image.open(user_project / "images" / "im0.png")).astype(np.float32) / 255
    loaded = visionfw.load_model(f"{user_project / 'my_models.py'}:my_net", weights=user_project / "my_net.pth")
    expected = np.round(np.clip(np.asarray(loaded.model(lr[None]))[0], 0, 1) * 255)
    assert up.shape == (32, 40, 3) and np.abs(up.astype(np.float32) - expected).max() <= 1


def test_readme_own_model_example_loads_pan_by_name(tmp_path, capsys, monkeypatch):
    """The README's PAN, official sizes, against the PyTorch twin standing in for the authors' PAN_x2.pth."""
    import re
    import runpy

    from conftest import REPO

    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- readme-example: own-model -->\s*```python\n(.*?)```", text, re.S).group(1)
    (tmp_path / "my_pan.py").write_text(block)
    torch.manual_seed(7)
    twin = Pan(nf=40, unf=24, nb=16, scale=2).eval()  # PyTorch's own random init: outputs of image scale
    _save(twin, tmp_path / "PAN_x2.pth")
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(tmp_path / "my_pan.py"), run_name="__main__")
    assert capsys.readouterr().out.strip() == "{'name': 118, 'order': 0, 'shape': 0, 'map': 0}"
    model = visionfw.build_model(namespace["pan"](scale=2))
    load_weights(model, tmp_path / "PAN_x2.pth")
    x = np.random.default_rng(3).random((1, 9, 7, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), _torch_out(twin, x), atol=1e-5)


@pytest.mark.paper  # the published 38.00 dB with the official file: `python -m pytest -m paper`
def test_registry_model_takes_the_official_file_by_path_in_test_and_export(shared_data, tmp_path, capsys):
    """`visionfw test/export --model=imdn --weights=IMDN_x2.pth`: the family's options, its own scale,
    IMDN's published protocol, the paper's 38.00 dB; the ONNX export passes its parity check."""
    import importlib.util

    from visionfw.cli import run

    path = shared_data / "weights" / "imdn" / "IMDN_x2.pth"
    assert (
        run(
            [
                "visionfw",
                "test",
                "--model=imdn",
                f"--weights={path}",
                "--test_data=Set5",
                "--noprogress",
                f"--data_dir={shared_data}",
                f"--results={tmp_path / 'r.json'}",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "imdn x2" in out and "protocol: edsr (auto: the protocol of imdn's published numbers)" in out
    import json

    psnr = json.loads((tmp_path / "r.json").read_text())["results"]["Set5"]["psnr"]
    assert abs(psnr - 38.00) <= 0.01, psnr
    if all(importlib.util.find_spec(m) is not None for m in ("tf2onnx", "onnxruntime")):
        assert (
            run(
                [
                    "visionfw",
                    "export",
                    "--model=imdn",
                    f"--weights={path}",
                    "--format=onnx",
                    f"--output={tmp_path / 'imdn_x2.onnx'}",
                ]
            )
            == 0
        )
        assert "check: max |export - keras|" in capsys.readouterr().out


def test_describe_takes_a_users_model_function(user_project, capsys):
    from visionfw.cli import run

    assert (
        run(
            [
                "visionfw",
                "describe",
                f"--model={user_project / 'my_models.py'}:my_net",
                "--model_kwargs=filters=4,scale=3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Model 'my_net'" in out and "HalfGain" in out and "(None, None, None, 27)" in out  # 3 x 3 x 3 channels
