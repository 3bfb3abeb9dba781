"""Task-aware downscaling autoencoders (Kim et al., ECCV 2018, and the thesis' variants).

Layout (every conv 3x3 'same', 64 filters unless noted; no BN; the only activations are
the ReLUs inside the residual blocks x + Conv(ReLU(Conv(x)))):

    encoder: Conv 3->8, Conv 8->16, PixelUnshuffle(2) [-> 64 ch at H/2, the head output h],
             R residual blocks, Conv 64, (+ h if encoder_skip), Conv 64->3,
             + MATLAB bicubic(HR, 1/2)                       -> SLR
    (Quantize: rounds SLR to 8 bits once switched on; identity with a straight-through gradient)
    decoder: Conv 3->64 [head output g], R residual blocks, Conv 64, (+ g if decoder_skip),
             (Conv 64 if extra_decoder_conv), Conv 64->256, PixelShuffle(2), Conv 64->3 -> SHR

Both head convs are 3x3 with no activation between them: that layout, and only it among
3x3/1x1 choices, gives the reference counts (aetad 671,350 = 1,392 head + 2 R 73,856 ...).

Variants (a reading of the issue, stated once here):
  aetad            R=3, no long skips (Kim et al.'s model as re-implemented)
  aetad_skip       R=3, encoder long skip only
  aetad_skip2      R=3, encoder and decoder long skips, each from its head output (final SR model)
  aetad_small / aetad_very_small / aetad_large: the skip2 layout with R = 2 / 1 / 4
  aetad_very_large R=7 and one extra decoder conv
  aetad_4direct    skip2 layout, x4 in one step: Conv 3->8, Conv 8->4, PixelUnshuffle(4) -> 64;
                   tail Conv 64->256, PixelShuffle(4) -> 16, Conv 16->3
  conv_only        R=3 with plain Conv-ReLU-Conv-ReLU pairs instead of residual blocks, no skips

x4/x16 apply the x2 encoder log2(s) times and then the x2 decoder log2(s) times with the same
weights (one ``encoder`` and one ``decoder`` sub-model, each called repeatedly).

Colour TAD (invertible greyscale): no unshuffle; the latent is one grey channel whose guide is
the full-range luma 0.299R+0.587G+0.114B in [0, 1]:
  encoder: Conv 3->16, Conv 16->64 [h], R res blocks, Conv 64, + h, Conv 64->32, Conv 32->1, + luma
  decoder: Conv 1->32, Conv 32->64 [g], R res blocks, Conv 64, + g, Conv 64->8, Conv 8->3
  aetad_color R=3; aetad_color_large R=4 (716,836 parameters).
"""
import math

import visionfw.tad  # noqa: F401  (registers the 'tad_apply' and 'luma' blocks)
from visionfw.errors import ConfigError
from visionfw.registry import model_entry, register_model

_DEFAULTS = {"Conv2D": {"filters": 64, "kernel_size": 3, "padding": "same"}}


class _Links:
    """Collects typed links while a spec is written node by node."""

    def __init__(self, n_inputs=1):
        self.node = n_inputs - 1
        self.spec = {}

    def add(self, code, ins, sub=None, par=None):
        self.node += 1
        ins = ins if isinstance(ins, (list, tuple)) else [ins]
        self.spec.setdefault(code, []).append(tuple(ins) + (self.node,))
        if sub is not None or code + "_sub" in self.spec:
            self.spec.setdefault(code + "_sub", []).append(sub)
        self.spec.setdefault(code + "_par", []).append(dict(par or {}))
        return self.node

    def conv(self, x, filters=64, **kw):
        return self.add("convo", x, "Conv2D", dict(filters=filters, **kw))


def _body(links, x, n_blocks, skip, conv_only):
    """R residual blocks (or plain conv pairs), Conv 64, optional long skip from ``x``."""
    h = x
    for _ in range(n_blocks):
        if conv_only:
            h = links.add("block", h, "conv_relu")
            h = links.add("block", h, "conv_relu")
        else:
            h = links.add("block", h, "resblock")
    h = links.conv(h)
    if skip:
        h = links.add("merge", [x, h], "Add")
    return h


def aetad_encoder(n_blocks=3, encoder_skip=True, factor=2, conv_only=False):
    """The x``factor`` TAD encoder spec: HR (3 ch) -> SLR = net(HR) + bicubic(HR, 1/factor)."""
    links = _Links()
    h = links.conv(0, 8)
    h = links.conv(h, 16 if factor == 2 else 64 // (factor * factor))
    h = links.add("pslyr", h, "PixelUnshuffle", {"scale": factor})
    h = _body(links, h, n_blocks, encoder_skip, conv_only)
    h = links.conv(h, 3)
    g = links.add("usmpl", 0, "BicubicResize", {"scale": 1.0 / factor})
    links.add("merge", [h, g], "Add")
    return dict({"name": f"aetad_encoder_x{factor}", "inputs": [(None, None, 3)], "defaults": _DEFAULTS},
                **links.spec)


def aetad_decoder(n_blocks=3, decoder_skip=True, factor=2, extra_decoder_conv=False, conv_only=False):
    """The x``factor`` TAD decoder spec: SLR (3 ch) -> SHR."""
    links = _Links()
    g = links.conv(0)
    h = _body(links, g, n_blocks, decoder_skip, conv_only)
    if extra_decoder_conv:
        h = links.conv(h)
    h = links.conv(h, 256)
    h = links.add("pslyr", h, "PixelShuffle", {"scale": factor})
    links.conv(h, 3)
    return dict({"name": f"aetad_decoder_x{factor}", "inputs": [(None, None, 3)], "defaults": _DEFAULTS},
                **links.spec)


def color_encoder(n_blocks=3):
    """Colour TAD encoder: RGB -> grey latent = net(RGB) + luma(RGB)."""
    links = _Links()
    h = links.conv(0, 16)
    h = links.conv(h, 64)
    h = _body(links, h, n_blocks, True, False)
    h = links.conv(h, 32)
    h = links.conv(h, 1)
    g = links.add("block", 0, "luma")
    links.add("merge", [h, g], "Add")
    return dict({"name": "aetad_color_encoder", "inputs": [(None, None, 3)], "defaults": _DEFAULTS}, **links.spec)


def color_decoder(n_blocks=3):
    """Colour TAD decoder: grey latent -> RGB."""
    links = _Links()
    h = links.conv(0, 32)
    g = links.conv(h, 64)
    h = _body(links, g, n_blocks, True, False)
    h = links.conv(h, 8)
    links.conv(h, 3)
    return dict({"name": "aetad_color_decoder", "inputs": [(None, None, 1)], "defaults": _DEFAULTS}, **links.spec)


def _recursions(scale, factor):
    times = math.log(scale, factor)
    if scale < factor or abs(times - round(times)) > 1e-9:
        raise ConfigError(f"TAD x{factor} models reach scales {factor}, {factor ** 2}, ... by recursion, "
                          f"not {scale}; pass --scale={factor} or {factor ** 2}.")
    return int(round(times))


def _autoencoder(name, enc, dec, times, latent, scale, extra_meta):
    """Full model: encoder^times -> Quantize (off) -> decoder^times; outputs [SHR, SLR]."""
    latent_channels = 1 if latent == "luma" else 3
    return {
        "name": name,
        "inputs": [(None, None, 3)],
        "block": [(0, 1), (2, 3)],
        "block_sub": ["tad_apply", "tad_apply"],
        "block_par": [{"spec": enc, "times": times, "role": "encoder"},
                      {"spec": dec, "times": times, "role": "decoder"}],
        "layer": [(1, 2)], "layer_sub": ["Quantize"],
        "layer_par": [{"levels": 255, "enabled": False, "name": "quantize"}],
        "outputs": [3, 2],
        "meta": dict({"scale": scale, "recursions": times, "latent": latent,
                      "latent_channels": latent_channels, "outputs": ["SHR", "SLR"],
                      "paper": "Kim et al., Task-Aware Image Downscaling, ECCV 2018"}, **extra_meta),
    }


def aetad(n_blocks=3, encoder_skip=True, decoder_skip=True, extra_decoder_conv=False, factor=2,
          conv_only=False, scale=2):
    """TAD autoencoder (x2 steps applied log2(scale) times with shared weights); outputs [SHR, SLR]."""
    times = _recursions(scale, factor)
    enc = aetad_encoder(n_blocks, encoder_skip, factor, conv_only)
    dec = aetad_decoder(n_blocks, decoder_skip, factor, extra_decoder_conv, conv_only)
    variant = f"R{n_blocks}{'_es' if encoder_skip else ''}{'_ds' if decoder_skip else ''}"
    return _autoencoder(f"AETAD_{variant}{'_conv' if conv_only else ''}_f{factor}_x{scale}", enc, dec, times,
                        "bicubic", scale, {"factor": factor, "n_blocks": n_blocks})


def aetad_color(n_blocks=3):
    """Colour TAD (RGB -> grey latent guided by luma -> RGB); outputs [RGB, grey]."""
    return _autoencoder(f"AETAD_color_R{n_blocks}", color_encoder(n_blocks), color_decoder(n_blocks), 1,
                        "luma", 1, {"factor": 1, "n_blocks": n_blocks})


_X2 = (2, 4, 16)
register_model("aetad", family="tad", scales=_X2, task="tad", n_blocks=3, encoder_skip=False,
               decoder_skip=False)(aetad)
register_model("aetad_skip", family="tad", scales=_X2, task="tad", n_blocks=3, encoder_skip=True,
               decoder_skip=False)(aetad)
register_model("aetad_skip2", family="tad", scales=_X2, task="tad", n_blocks=3)(aetad)
register_model("aetad_small", family="tad", scales=_X2, task="tad", n_blocks=2)(aetad)
register_model("aetad_very_small", family="tad", scales=_X2, task="tad", n_blocks=1)(aetad)
register_model("aetad_large", family="tad", scales=_X2, task="tad", n_blocks=4)(aetad)
register_model("aetad_very_large", family="tad", scales=_X2, task="tad", n_blocks=7,
               extra_decoder_conv=True)(aetad)


def aetad_4direct(n_blocks=3, scale=4):
    """TAD x4 in one step (PixelUnshuffle 4 / PixelShuffle 4), skip2 layout; x16 by recursion."""
    return aetad(n_blocks=n_blocks, factor=4, scale=scale)


register_model("aetad_4direct", family="tad", scales=(4, 16), task="tad")(aetad_4direct)
register_model("conv_only", family="tad", scales=_X2, task="tad", n_blocks=3, encoder_skip=False,
               decoder_skip=False, conv_only=True)(aetad)
register_model("aetad_color", family="tad", scales=(), task="tad", n_blocks=3)(aetad_color)
register_model("aetad_color_large", family="tad", scales=(), task="tad", n_blocks=4)(aetad_color)


def _parts(name, scale):
    from visionfw.registry import get_spec

    hyper = {} if model_entry(name).fn is aetad_color else {"scale": scale}
    spec = get_spec(name, **hyper)
    enc_par, dec_par = spec["block_par"]
    return spec, enc_par, dec_par


def encoder_spec(name, scale=2):
    """Spec of the encoder alone of zoo model ``name`` (HR -> SLR), same layer names as in the full model."""
    spec, enc, _ = _parts(name, scale)
    return {"name": f"{spec['name']}_encoder", "inputs": [(None, None, 3)],
            "block": [(0, 1)], "block_sub": ["tad_apply"], "block_par": [dict(enc)],
            "meta": dict(spec["meta"], part="encoder")}


def decoder_spec(name, scale=2):
    """Spec of the decoder alone of zoo model ``name`` (SLR -> SHR)."""
    spec, _, dec = _parts(name, scale)
    return {"name": f"{spec['name']}_decoder", "inputs": [(None, None, spec["meta"]["latent_channels"])],
            "block": [(0, 1)], "block_sub": ["tad_apply"], "block_par": [dict(dec)],
            "meta": dict(spec["meta"], part="decoder")}
