"""Zhang, Isola, Efros: Colorful Image Colorization (ECCV 2016).

Input: L in [0, 100] (one channel), normalised inside the model to (L - 50) / 100.  Output: a
softmax over the Q in-gamut ab bins (``visionfw.tasks.colorization.ab_bins``, Q = 261 by our gamut
test; ``n_bins=313`` builds the paper's exact head) at 1/4 of the input resolution.

    conv1: 2 convs 64 (the last with stride 2), ReLU each, BN      -> 1/2
    conv2: 2 convs 128 (stride 2 last), BN                         -> 1/4
    conv3: 3 convs 256 (stride 2 last), BN                         -> 1/8
    conv4: 3 convs 512, BN
    conv5, conv6: 3 convs 512 with dilation 2, BN
    conv7: 3 convs 512, BN
    conv8: ConvTranspose 256 (4x4, stride 2), 2 convs 256, ReLU    -> 1/4
           1x1 conv to Q, softmax
All convs 3x3 'same'.  ``colorization_small`` divides every width by 8 (a CPU-sized variant).
"""

from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import register_model

PAPER = "Zhang, Isola, Efros, Colorful Image Colorization, ECCV 2016"
# In-gamut ab bins of our gamut test; tests check it equals len(visionfw.tasks.colorization.ab_bins()).
N_AB_BINS = 261
_STAGES = (  # (convs, filters, last stride, dilation) of conv1 .. conv7
    (2, 64, 2, 1),
    (2, 128, 2, 1),
    (3, 256, 2, 1),
    (3, 512, 1, 1),
    (3, 512, 1, 2),
    (3, 512, 1, 2),
    (3, 512, 1, 1),
)


def colorization_eccv16(width_div=1, n_bins=N_AB_BINS):
    """Zhang et al.'s colorization network (conv1..conv8, BN, dilated conv5/6, Q-way softmax)."""
    g = Graph(
        f"colorization_eccv16{'' if width_div == 1 else f'_div{width_div}'}_q{n_bins}",
        inputs=[(None, None, 1)],
        defaults={"Conv2D": {"kernel_size": 3, "padding": "same"}},
    )
    x = g.layer("MeanShift", g.input, mean=(50.0,), std=(100.0,), sign=-1)
    for n_convs, filters, stride, dilation in _STAGES:
        for i in range(n_convs):
            extra = {"strides": stride} if i == n_convs - 1 and stride != 1 else {}
            if dilation != 1:
                extra["dilation_rate"] = dilation
            x = g.conv(x, max(1, filters // width_div), activation="relu", **extra)
        x = g.norm(x)
    f8 = max(1, 256 // width_div)
    x = g.conv(x, f8, 4, cls="Conv2DTranspose", strides=2, padding="same", activation="relu")
    for _ in range(2):
        x = g.conv(x, f8, activation="relu")
    g.act(g.conv(x, n_bins, 1), "Softmax")
    return g.spec(
        meta={
            "input": "L in [0, 100]",
            "output": f"{n_bins}-way ab bin probabilities at 1/4 size",
            "output_factor": 4,
            "n_bins": n_bins,
            "paper": PAPER,
        }
    )


register_model(
    "colorization_eccv16",
    colorization_eccv16,
    family="colorization",
    scales=(),
    task="colorize",
    paper=PAPER,
    params=32_227_013,
    description="Colorization net of Zhang et al. (Q-way ab softmax)",
)
register_model(
    "colorization_small",
    colorization_eccv16,
    family="colorization",
    scales=(),
    task="colorize",
    paper=PAPER,
    params=513_149,
    width_div=8,
    description="Colorization net with every width divided by 8 (a CPU-sized variant)",
)
