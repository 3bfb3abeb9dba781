"""LapSRN (Lai et al., CVPR 2017): a Laplacian pyramid that doubles the resolution per level.

    LR Y --conv 3x3 64 + LReLU--> f
    per level (x2 each):
        feature branch: f --(conv 3x3 64 + LReLU) x depth--> --convT 3x3 /2 + LReLU--> f
                        f --conv 3x3 -> 1--> residual
        image branch:   img --convT 4x4 /2 (learnt, bilinear init)--> + residual --> img  (this level's SR)

LeakyReLU slope 0.2.  Input: the LR Y channel in [0, 1] (not pre-upsampled); output: the SR Y.
Layers carry the names of the official MatConvNet DagNN layers, whose levels count down to
``level1`` (the finest), so :func:`visionfw.weights.matconvnet.load_lapsrn` pairs them by name.
Both transposed convolutions use Keras' 'same' cropping, which equals the release's crops
(3x3: [0 1 0 1], 4x4: [1 1 1 1]; the loader checks them).
"""

import math

from visionfw.errors import SpecError
from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import WeightsInfo, register_model

PAPER = "Lai et al., Deep Laplacian Pyramid Networks for Fast and Accurate Super-Resolution, CVPR 2017"
SLOPE = 0.2


def lapsrn(scale=4, depth=None, filters=64, all_levels=False):
    """LapSRN for ``scale`` (2, 4 or 8: one pyramid level per factor 2) with ``depth`` convs per level.

    ``depth`` defaults to the release's (10 for x2/x4, 5 for x8).  ``all_levels=True`` outputs every
    level's image, finest first (x``scale``, x``scale/2``, ...), for deep supervision.
    """
    levels = int(round(math.log2(scale)))
    if scale < 2 or 2**levels != scale:
        raise SpecError(f"lapsrn: scale={scale} must be a power of two (2, 4, 8); one level per x2.")
    depth = depth or (5 if scale >= 8 else 10)
    g = Graph(
        f"LapSRN_x{scale}",
        inputs=[(None, None, 1)],
        defaults={
            "Conv2D": {"filters": filters, "kernel_size": 3, "padding": "same"},
            "LeakyReLU": {"negative_slope": SLOPE},
        },
    )
    f = g.act(g.conv(g.input, name="input_conv"), "LeakyReLU")
    img, outputs = g.input, []
    for n in range(levels, 0, -1):  # the release names the coarsest level `level{levels}`
        for d in range(1, depth + 1):
            f = g.act(g.conv(f, name=f"level{n}_conv{d}"), "LeakyReLU")
        f = g.act(
            g.conv(f, filters, 3, cls="Conv2DTranspose", strides=2, padding="same", name=f"level{n}_upconv"),
            "LeakyReLU",
        )
        residual = g.conv(f, 1, name=f"level{n}_residual")
        up = g.conv(
            img,
            1,
            4,
            cls="Conv2DTranspose",
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer="visionfw>BilinearKernel",
            name=f"level{n}_img_up",
        )
        img = g.add(up, residual)
        outputs.append(img)
    if all_levels:
        g.output(*reversed(outputs))
    return g.spec(
        meta={
            "scale": scale,
            "channels": "y",
            "upsampled_input": False,
            "paper": PAPER,
            "outputs": ([f"x{scale >> i}" for i in range(levels)] if all_levels else [f"x{scale}"]),
        }
    )


RECIPE = {
    "loss": "charbonnier",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 1e-4,
    "schedule": "constant",
    "schedule_kwargs": {},
    "batch_size": 64,
    "hr_patch": 48,
    "source": "The official init_opts.m / getBatch_LapSRN.m (Lai et al. 2017): Charbonnier ('L1', eps^2 = 1e-6, "
    "summed) loss at every level (deep supervision), MatConvNet SGD with weight decay 1e-4, lr 1e-5 "
    "halved every 50 epochs (min 1e-6), batch 64 of 48x48 HR Y patches from T91 + BSDS200, random "
    "rescale 0.5-1.0, rot90 and flips, LR = imresize(HR, 1/s).",
    "notes": "We use Adam 1e-4 on a per-pixel mean loss (MatConvNet sums the loss over pixels and batch, so "
    "its SGD lr 1e-5 is not comparable) and supervise the final level only; build "
    "lapsrn(all_levels=True) to supervise every level.  The paper's text was not checked here.",
}

_RELEASE = "the authors' MatConvNet release, github.com/phoenix104104/LapSRN models/LapSRN_x{s}.mat"
_SHA256 = {
    2: "e368225004e2d5e49d772c5c4eb16c3f28f7fe3b68fec7a9bb91f55e25602baa",
    4: "1d845a3efdca8848968df9e216931419e3b1122373a233d612b4f599985e6367",
    8: "a887221465fe22ebda8ad5963cf812db807e7a9aa8e9d9453aee60e237af5e10",
}

# Published (the CVPR 2017 benchmark table; x8 from a copy of that table, Set5 26.14 / Set14 24.44):
# Y, shave = s, LR = MATLAB imresize of the double RGB HR.  The official test_LapSRN.m works in
# double (float LR, float Y in), puts the SR Y back with bicubic chroma, quantises RGB to uint8 and
# measures the float Y, with Set14's grey bridge.png read as RGB.  A re-implementation of that
# reproduces all six cells within 0.005 dB; neither of our protocols does: 'srcnn' (the closest:
# float LR, but Y rounded and grey taken as Y) is 0.01-0.06 dB low on Set5 and ~0.11 dB low on
# Set14 (bridge alone: 28.01 vs 29.37 dB at x2).  tests/test_reproduce_imdn_lapsrn.py has every number.
register_model(
    "lapsrn",
    lapsrn,
    scales=(2, 4, 8),
    recipe=RECIPE,
    paper=PAPER,
    params={2: 407_441, 4: 814_242, 8: 667_123},
    description="LapSRN: Laplacian pyramid, 10 (x8: 5) conv layers per level, Y channel",
    weights={
        s: WeightsInfo(f"lapsrn/LapSRN_x{s}.mat", "matconvnet", sha256=h, source=_RELEASE.format(s=s))
        for s, h in _SHA256.items()
    },
    published={
        ("Set5", 2): 37.52,
        ("Set14", 2): 33.08,
        ("Set5", 4): 31.54,
        ("Set14", 4): 28.19,
        ("Set5", 8): 26.14,
        ("Set14", 8): 24.44,
    },
    published_protocol="srcnn",
)
