"""ESRGAN (Wang et al., ECCVW 2018) generator and the GAN discriminators of SRGAN, ESRGAN and Real-ESRGAN.

RRDBNet, the ESRGAN generator (no batch norm; LeakyReLU 0.2; residual scaling beta = 0.2)::

    LR --conv_first--> fea --(RRDB) x n_blocks--> trunk_conv --(+ fea)--> (nearest x2, conv, LReLU) per x2
       --HRconv, LReLU--> conv_last --> SR
    RRDB(x) = x + 0.2 * RDB3(RDB2(RDB1(x)))
    RDB(x)  = x + 0.2 * conv5([x, x1, x2, x3, x4]),  x_i = LReLU(conv_i([x, x1, .., x_{i-1}]))  (growth channels)

Layer names follow the official PyTorch state dict (``RRDB_trunk_3_RDB2_conv4`` is
``RRDB_trunk.3.RDB2.conv4``).  RGB in [0, 1], no mean shift.

SRGAN's discriminator (Ledig et al., CVPR 2017, Fig. 4), the VGG-style one ESRGAN also trains with::

    HR (input_size^2) --conv 64, LReLU--> (conv k, BN, LReLU) for k, stride = 64 s2, 128 s1, 128 s2, 256 s1,
       256 s2, 512 s1, 512 s2 --> flatten --> dense 1024, LReLU --> dense 1 (a logit: the losses apply the sigmoid)

ESRGAN's own discriminator (``Discriminator_VGG_128`` of the official code) pairs a 3x3 conv with a
4x4 stride-2 conv per stage (64, 128, 256, 512, 512 channels; BN after all but the first conv) and
ends in dense 100 -> 1.  The dense layers fix the input size (``input_size``, 96 in SRGAN, 128 in
ESRGAN): train with HR patches of that size; the GAN task sizes it to the HR patch.

Real-ESRGAN's U-Net discriminator (Wang et al., ICCVW 2021) is fully convolutional (one logit per
pixel) with spectral normalisation (:class:`visionfw.zoo.layers.SpectralConv2D`)::

    x0 = LReLU(conv 64) ; x1..x3 = LReLU(SNconv 4x4 s2) to 128, 256, 512
    x4 = LReLU(SNconv(up2(x3))) + x2 ; x5 = ... + x1 ; x6 = ... + x0   (bilinear up, 256, 128, 64)
    LReLU(SNconv 64) x 2 --> conv 1 --> per-pixel logits
"""

import math

from visionfw.errors import SpecError
from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import register_model

PAPER = "Wang et al., ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks, ECCV Workshops 2018"
SRGAN_PAPER = "Ledig et al., Photo-Realistic Single Image Super-Resolution Using a GAN, CVPR 2017"
REAL_ESRGAN_PAPER = (
    "Wang et al., Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data, ICCV Workshops 2021"
)
SLOPE = 0.2  # LeakyReLU slope of all three networks
RES_SCALE = 0.2  # ESRGAN's residual scaling beta
# PyTorch's BatchNorm2d defaults (momentum 0.1 there is Keras' 0.9), as the reference implementations use
_TORCH_BN = {"momentum": 0.9, "epsilon": 1e-5}


def _lrelu(g, x):
    return g.act(x, "LeakyReLU", negative_slope=SLOPE)


def _upsample_stages(scale):
    stages = int(round(math.log2(scale))) if scale >= 2 else 0
    if 2**stages != scale:
        raise SpecError(f"RRDBNet upsamples by x2 stages: scale must be a power of two, got {scale}.")
    return stages


# ----------------------------------------------------------------------------- the generator


def _residual_dense_block(g, x, filters, growth, name):
    """RDB: five densely connected convs (the first four LeakyReLU'd), scaled residual."""
    features = [x]
    for i in range(1, 5):
        inp = features[0] if i == 1 else g.concat(*features)
        features.append(_lrelu(g, g.conv(inp, growth, name=f"{name}_conv{i}")))
    y = g.conv(g.concat(*features), filters, name=f"{name}_conv5")
    return g.add(x, g.layer("Scale", y, value=RES_SCALE))


def _rrdb(g, x, filters, growth, name):
    """Residual-in-residual dense block: three RDBs inside a scaled residual."""
    y = x
    for k in (1, 2, 3):
        y = _residual_dense_block(g, y, filters, growth, f"{name}_RDB{k}")
    return g.add(x, g.layer("Scale", y, value=RES_SCALE))


def rrdbnet(n_blocks=23, filters=64, growth=32, channels=3, scale=4):
    """ESRGAN's RRDBNet: n RRDBs with a long skip, nearest-neighbour x2 upsampling stages, HR convs."""
    g = Graph(
        f"RRDBNet_{n_blocks}x{filters}_x{scale}",
        inputs=[(None, None, channels)],
        defaults={"Conv2D": {"kernel_size": 3, "padding": "same"}},
    )
    fea = x = g.conv(g.input, filters, name="conv_first")
    for i in range(n_blocks):
        x = _rrdb(g, x, filters, growth, f"RRDB_trunk_{i}")
    x = g.add(fea, g.conv(x, filters, name="trunk_conv"))
    for k in range(1, _upsample_stages(scale) + 1):
        x = _lrelu(g, g.conv(g.upsample(x, size=2, interpolation="nearest"), filters, name=f"upconv{k}"))
    x = _lrelu(g, g.conv(x, filters, name="HRconv"))
    g.conv(x, channels, name="conv_last")
    return g.spec(
        meta={"scale": scale, "channels": "rgb" if channels == 3 else "y", "upsampled_input": False, "paper": PAPER}
    )


# ----------------------------------------------------------------------------- the discriminators

# (filters multiplier, stride) of the seven conv-BN-LReLU stages after the first conv
_SRGAN_STAGES = ((1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2))


def srgan_discriminator(filters=64, dense_units=1024, input_size=96, channels=3):
    """SRGAN's VGG-style discriminator on ``input_size``^2 HR patches; returns one logit per image."""
    if input_size % 16:
        raise SpecError(
            f"srgan_discriminator: input_size={input_size} must be a multiple of 16 (4 stride-2 "
            "convs before the dense layer)."
        )
    g = Graph(
        f"SRGAN_D_{filters}_{input_size}",
        inputs=[(input_size, input_size, channels)],
        defaults={"Conv2D": {"kernel_size": 3, "padding": "same"}, "BatchNormalization": dict(_TORCH_BN)},
    )
    x = _lrelu(g, g.conv(g.input, filters))
    for width, stride in _SRGAN_STAGES:
        x = _lrelu(g, g.norm(g.conv(x, filters * width, strides=stride, use_bias=False)))  # BN's beta is the bias
    x = _lrelu(g, g.dense(g.flatten(x), dense_units))
    g.dense(x, 1)
    return g.spec(
        meta={
            "input": f"RGB HR patches of {input_size}x{input_size} in [0, 1]",
            "output": "one real/fake logit per image",
            "input_size": input_size,
            "paper": SRGAN_PAPER,
        }
    )


# (filters multiplier) of the five stages of ESRGAN's discriminator: conv 3x3, then conv 4x4 stride 2
_ESRGAN_D_STAGES = (1, 2, 4, 8, 8)


def esrgan_discriminator(filters=64, dense_units=100, input_size=128, channels=3):
    """ESRGAN's VGG-style discriminator (``Discriminator_VGG_128``): five stages of a 3x3 conv and a
    4x4 stride-2 conv (BN and LeakyReLU 0.2 after each but the first), dense 100, one logit."""
    if input_size % 32:
        raise SpecError(
            f"esrgan_discriminator: input_size={input_size} must be a multiple of 32 (5 stride-2 "
            "convs before the dense layer)."
        )
    g = Graph(
        f"ESRGAN_D_{filters}_{input_size}",
        inputs=[(input_size, input_size, channels)],
        defaults={"Conv2D": {"padding": "same", "use_bias": False}, "BatchNormalization": dict(_TORCH_BN)},
    )
    x = g.input
    for k, width in enumerate(_ESRGAN_D_STAGES):
        if k == 0:
            x = _lrelu(g, g.conv(x, filters, 3, use_bias=True, name="conv0_0"))
        else:
            x = _lrelu(g, g.norm(g.conv(x, filters * width, 3, name=f"conv{k}_0"), name=f"bn{k}_0"))
        x = _lrelu(g, g.norm(g.conv(x, filters * width, 4, strides=2, name=f"conv{k}_1"), name=f"bn{k}_1"))
    # flattened in PyTorch's (C, H, W) order, so the official linear1 weights load as they are
    chw = g.layer("Permute", x, dims=(3, 1, 2), name="to_chw")
    x = _lrelu(g, g.dense(g.flatten(chw), dense_units, name="linear1"))
    g.dense(x, 1, name="linear2")
    return g.spec(
        meta={
            "input": f"RGB HR patches of {input_size}x{input_size} in [0, 1]",
            "output": "one real/fake logit per image",
            "input_size": input_size,
            "paper": PAPER,
        }
    )


def _sn_conv(g, x, filters, name, **kwargs):
    """A spectrally normalised convolution (a custom layer, so a 'layer' link)."""
    return g.layer("SpectralConv2D", x, filters=filters, name=name, **kwargs)


def unet_discriminator(filters=64, channels=3):
    """Real-ESRGAN's U-Net discriminator with spectral normalisation; one logit per pixel."""
    g = Graph(
        f"UNet_D_SN_{filters}",
        inputs=[(None, None, channels)],
        defaults={"SpectralConv2D": {"kernel_size": 3, "padding": "same", "use_bias": False}},
    )
    x0 = _lrelu(g, g.conv(g.input, filters, 3, padding="same", name="conv0"))
    skips, x = [x0], x0
    for k, width in ((1, 2), (2, 4), (3, 8)):  # downsample
        x = _lrelu(g, _sn_conv(g, x, filters * width, f"conv{k}", kernel_size=4, strides=2))
        skips.append(x)
    for k, width in ((4, 4), (5, 2), (6, 1)):  # upsample, add the skip of the same size
        up = g.upsample(x, "Interpolate", scale=2, mode="bilinear")
        x = g.add(_lrelu(g, _sn_conv(g, up, filters * width, f"conv{k}")), skips[6 - k])
    for k in (7, 8):
        x = _lrelu(g, _sn_conv(g, x, filters, f"conv{k}"))
    g.conv(x, 1, 3, padding="same", name="conv9")
    return g.spec(
        meta={
            "input": "RGB HR patches in [0, 1], sides a multiple of 8",
            "output": "one real/fake logit per pixel",
            "paper": REAL_ESRGAN_PAPER,
            "layers": "SpectralConv2D (visionfw.zoo.layers)",
        }
    )


RECIPE = {
    "loss": "l1",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 1e-4,
    "schedule": "multistep",
    "schedule_kwargs": {"milestones": [50_000, 100_000, 200_000, 300_000], "gamma": 0.5},
    "batch_size": 16,
    "hr_patch": 128,
    "source": "Wang et al. 2018, Sec. 4.1: the GAN stage (task 'gan', objective 'esrgan': 1e-2*L1 + VGG19 "
    "conv5_4 perceptual + 5e-3*RaGAN) starts from the PSNR-oriented RRDBNet (L1, lr 2e-4 halved every "
    "2x10^5 updates) and trains generator and discriminator with Adam(0.9, 0.999), lr 1e-4 halved at "
    "50k, 100k, 200k and 300k iterations; batch 16 of 128x128 HR patches.",
    "notes": "The recipe is the GAN stage's; the PSNR stage is the same recipe with loss l1, lr 2e-4, "
    "schedule step(200000, 0.5).",
}

register_model(
    "rrdbnet",
    rrdbnet,
    family="esrgan",
    scales=(4,),
    recipe=RECIPE,
    paper=PAPER,
    params={4: 16_697_987},
    description="ESRGAN generator RRDBNet: 23 RRDB x 64 features, growth 32 (RRDB_ESRGAN_x4)",
)
register_model(
    "rrdbnet_small",
    rrdbnet,
    family="esrgan",
    scales=(2, 4),
    paper=PAPER,
    n_blocks=3,
    filters=32,
    growth=16,
    params={2: 569_507, 4: 578_755},
    description="RRDBNet with 3 RRDB x 32 features, growth 16 (a CPU-sized variant)",
)
register_model(
    "srgan_discriminator",
    srgan_discriminator,
    family="esrgan",
    scales=(),
    task="discriminator",
    paper=SRGAN_PAPER,
    params=23_563_649,
    params_counted="trainable",
    description="SRGAN's VGG-style discriminator, 64..512 channels, dense 1024, 96x96 input",
)
register_model(
    "srgan_discriminator_small",
    srgan_discriminator,
    family="esrgan",
    scales=(),
    task="discriminator",
    paper=SRGAN_PAPER,
    filters=16,
    dense_units=128,
    params=884_065,
    params_counted="trainable",
    description="SRGAN's discriminator with 16..128 channels and dense 128 (a CPU-sized variant)",
)
register_model(
    "esrgan_discriminator",
    esrgan_discriminator,
    family="esrgan",
    scales=(),
    task="discriminator",
    paper=PAPER,
    params=14_499_401,
    params_counted="trainable",
    description="ESRGAN's VGG-style discriminator (Discriminator_VGG_128): 64..512 channels, dense 100",
)
register_model(
    "unet_discriminator",
    unet_discriminator,
    family="esrgan",
    scales=(),
    task="discriminator",
    paper=REAL_ESRGAN_PAPER,
    params=4_376_897,
    params_counted="trainable",
    description="Real-ESRGAN's U-Net discriminator with spectral normalisation (per-pixel logits)",
)
