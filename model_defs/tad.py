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

import visionfw
from visionfw.errors import ConfigError, SpecError
from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import register_model

PAPER = "Kim et al., Task-Aware Image Downscaling, ECCV 2018"
_DEFAULTS = {"Conv2D": {"filters": 64, "kernel_size": 3, "padding": "same"}}


@visionfw.register_block("tad_apply")
def tad_apply(inputs, name, spec, times=1, role=None):
    """Builds ``spec`` once as a sub-model named ``role`` and applies it ``times`` times.

    Every application shares the sub-model's weights: this is how TAD x4/x16 reuse the x2
    encoder and decoder (the sub-model is called on its own output).
    """
    if not isinstance(spec, dict):
        raise SpecError(f"block 'tad_apply' ({name}): 'spec' must be a dict spec, got {type(spec).__name__}.")
    if int(times) < 1:
        raise SpecError(f"block 'tad_apply' ({name}): times={times} must be at least 1.")
    sub = visionfw.build_model(dict(spec, name=role or spec["name"]))
    x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
    for _ in range(int(times)):
        x = sub(x)
    return x


@visionfw.register_block("luma")
def luma(inputs, name):
    """The luma of an RGB node (the colour TAD's grey guide)."""
    return visionfw.make_layer("Luma", name=name)(inputs[0] if isinstance(inputs, (list, tuple)) else inputs)


def _body(g, x, n_blocks, skip, conv_only):
    """R residual blocks (or plain conv pairs), Conv 64, optional long skip from ``x``."""
    h = x
    for _ in range(n_blocks):
        if conv_only:
            h = g.block("conv_relu", g.block("conv_relu", h))
        else:
            h = g.block("resblock", h)
    h = g.conv(h, 64)
    return g.add(x, h) if skip else h


def aetad_encoder(n_blocks=3, encoder_skip=True, factor=2, conv_only=False):
    """The x``factor`` TAD encoder spec: HR (3 ch) -> SLR = net(HR) + bicubic(HR, 1/factor)."""
    g = Graph(f"aetad_encoder_x{factor}", inputs=[(None, None, 3)], defaults=_DEFAULTS)
    h = g.conv(g.input, 8)
    h = g.conv(h, 16 if factor == 2 else 64 // (factor * factor))
    h = g.unshuffle(h, factor)
    h = _body(g, h, n_blocks, encoder_skip, conv_only)
    h = g.conv(h, 3)
    g.add(h, g.bicubic(g.input, 1.0 / factor))
    return g.spec()


def aetad_decoder(n_blocks=3, decoder_skip=True, factor=2, extra_decoder_conv=False, conv_only=False):
    """The x``factor`` TAD decoder spec: SLR (3 ch) -> SHR."""
    g = Graph(f"aetad_decoder_x{factor}", inputs=[(None, None, 3)], defaults=_DEFAULTS)
    head = g.conv(g.input, 64)
    h = _body(g, head, n_blocks, decoder_skip, conv_only)
    if extra_decoder_conv:
        h = g.conv(h, 64)
    h = g.shuffle(g.conv(h, 256), factor)
    g.conv(h, 3)
    return g.spec()


def color_encoder(n_blocks=3):
    """Colour TAD encoder: RGB -> grey latent = net(RGB) + luma(RGB)."""
    g = Graph("aetad_color_encoder", inputs=[(None, None, 3)], defaults=_DEFAULTS)
    h = g.conv(g.conv(g.input, 16), 64)
    h = _body(g, h, n_blocks, True, False)
    h = g.conv(g.conv(h, 32), 1)
    g.add(h, g.block("luma", g.input))
    return g.spec()


def color_decoder(n_blocks=3):
    """Colour TAD decoder: grey latent -> RGB."""
    g = Graph("aetad_color_decoder", inputs=[(None, None, 1)], defaults=_DEFAULTS)
    head = g.conv(g.conv(g.input, 32), 64)
    h = _body(g, head, n_blocks, True, False)
    g.conv(g.conv(h, 8), 3)
    return g.spec()


def _recursions(scale, factor):
    times = math.log(scale, factor)
    if scale < factor or abs(times - round(times)) > 1e-9:
        raise ConfigError(
            f"TAD x{factor} models reach scales {factor}, {factor**2}, ... by recursion, "
            f"not {scale}; pass --scale={factor} or {factor**2}."
        )
    return int(round(times))


def _autoencoder(name, enc, dec, *, times, latent, scale, extra_meta):
    """Full model: encoder^times -> Quantize (off) -> decoder^times; outputs [SHR, SLR]."""
    g = Graph(name, inputs=[(None, None, 3)])
    slr = g.block("tad_apply", g.input, spec=enc, times=times, role="encoder")
    quantized = g.layer("Quantize", slr, levels=255, enabled=False, name="quantize")
    shr = g.block("tad_apply", quantized, spec=dec, times=times, role="decoder")
    g.output(shr, quantized)  # SLR as stored: after the 8-bit rounding (once it is switched on)
    return g.spec(
        meta=dict(
            {
                "scale": scale,
                "recursions": times,
                "latent": latent,
                "latent_channels": 1 if latent == "luma" else 3,
                "outputs": ["SHR", "SLR"],
                "paper": PAPER,
            },
            **extra_meta,
        )
    )


def aetad(
    n_blocks=3, encoder_skip=True, decoder_skip=True, *, extra_decoder_conv=False, factor=2, conv_only=False, scale=2
):
    """TAD autoencoder (x2 steps applied log2(scale) times with shared weights); outputs [SHR, SLR]."""
    times = _recursions(scale, factor)
    enc = aetad_encoder(n_blocks, encoder_skip, factor, conv_only)
    dec = aetad_decoder(n_blocks, decoder_skip, factor, extra_decoder_conv, conv_only)
    variant = f"R{n_blocks}{'_es' if encoder_skip else ''}{'_ds' if decoder_skip else ''}"
    return _autoencoder(
        f"AETAD_{variant}{'_conv' if conv_only else ''}_f{factor}_x{scale}",
        enc,
        dec,
        times=times,
        latent="bicubic",
        scale=scale,
        extra_meta={"factor": factor, "n_blocks": n_blocks},
    )


def aetad_color(n_blocks=3):
    """Colour TAD (RGB -> grey latent guided by luma -> RGB); outputs [RGB, grey]."""
    return _autoencoder(
        f"AETAD_color_R{n_blocks}",
        color_encoder(n_blocks),
        color_decoder(n_blocks),
        times=1,
        latent="luma",
        scale=1,
        extra_meta={"factor": 1, "n_blocks": n_blocks},
    )


def luma_encoder():
    """The fixed 'encoder' of the grey baseline: RGB -> plain luma, no weights."""
    g = Graph("luma_encoder", inputs=[(None, None, 3)])
    g.block("luma", g.input)
    return g.spec()


def aetad_color_grey_baseline(n_blocks=3):
    """Colour TAD's grey baseline: the colour decoder alone, restoring RGB from the plain 8-bit luma (no
    learned encoder).  Laid out as colour TAD with :func:`luma_encoder` as encoder, so the TAD task
    trains it (``beta=0``, ``quantize_from=0``: the decoder sees the 8-bit luma, as from a file) and
    ``visionfw.tasks.tad.evaluate_color_tad`` measures it.  Not in the zoo: an experiment's reference model."""
    return _autoencoder(
        f"AETAD_color_grey_baseline_R{n_blocks}",
        luma_encoder(),
        color_decoder(n_blocks),
        times=1,
        latent="luma",
        scale=1,
        extra_meta={"factor": 1, "n_blocks": n_blocks},
    )


# name: (hyper-parameters, trainable parameters, description); every x2 model also runs at x4/x16.
_X2_MODELS = {
    "aetad": (
        dict(n_blocks=3, encoder_skip=False, decoder_skip=False),
        671_350,
        "R=3, no long skips (Kim et al.'s model as re-implemented)",
    ),
    "aetad_skip": (dict(n_blocks=3, encoder_skip=True, decoder_skip=False), 671_350, "R=3, encoder long skip"),
    "aetad_skip2": (dict(n_blocks=3), 671_350, "R=3, encoder and decoder long skips (the final SR model)"),
    "aetad_small": (dict(n_blocks=2), 523_638, "skip2 layout, R=2"),
    "aetad_very_small": (dict(n_blocks=1), 375_926, "skip2 layout, R=1"),
    "aetad_large": (dict(n_blocks=4), 819_062, "skip2 layout, R=4"),
    "aetad_very_large": (
        dict(n_blocks=7, extra_decoder_conv=True),
        1_299_126,
        "skip2 layout, R=7 and one extra decoder conv",
    ),
    "conv_only": (
        dict(n_blocks=3, encoder_skip=False, decoder_skip=False, conv_only=True),
        671_350,
        "R=3 with plain Conv-ReLU pairs instead of residual blocks, no skips",
    ),
}
for _name, (_hyper, _count, _text) in _X2_MODELS.items():
    register_model(
        _name,
        aetad,
        family="tad",
        scales=(2, 4, 16),
        task="tad",
        paper=PAPER,
        params=_count,
        params_counted="trainable",
        description=f"TAD autoencoder, {_text}",
        **_hyper,
    )


def aetad_4direct(n_blocks=3, scale=4):
    """TAD x4 in one step (PixelUnshuffle 4 / PixelShuffle 4), skip2 layout; x16 by recursion."""
    return aetad(n_blocks=n_blocks, factor=4, scale=scale)


register_model(
    "aetad_4direct",
    aetad_4direct,
    family="tad",
    scales=(4, 16),
    task="tad",
    paper=PAPER,
    params=669_178,
    params_counted="trainable",
    description="TAD autoencoder, skip2 layout, x4 in one step (PixelUnshuffle/PixelShuffle 4)",
)
register_model(
    "aetad_color",
    aetad_color,
    family="tad",
    scales=(),
    task="tad",
    paper=PAPER,
    n_blocks=3,
    params=569_124,
    params_counted="trainable",
    description="Colour TAD: RGB -> grey latent guided by luma -> RGB, R=3",
)
register_model(
    "aetad_color_large",
    aetad_color,
    family="tad",
    scales=(),
    task="tad",
    paper=PAPER,
    n_blocks=4,
    params=716_836,
    params_counted="trainable",
    description="Colour TAD, R=4",
)


def _part(name, scale, role):
    """The encoder or decoder alone of zoo model ``name``, with the same layer names as in the full model."""
    from visionfw.zoo.registry import get_spec

    spec = get_spec(name, scale=scale)
    meta = spec["meta"]
    g = Graph(f"{spec['name']}_{role}", inputs=[(None, None, 3 if role == "encoder" else meta["latent_channels"])])
    g.block("tad_apply", g.input, **spec["block_par"][0 if role == "encoder" else 1])
    return g.spec(meta=dict(meta, part=role))


def encoder_spec(name, scale=2):
    """Spec of the encoder alone of zoo model ``name`` (HR -> SLR)."""
    return _part(name, scale, "encoder")


def decoder_spec(name, scale=2):
    """Spec of the decoder alone of zoo model ``name`` (SLR -> SHR)."""
    return _part(name, scale, "decoder")
