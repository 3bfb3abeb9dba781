"""The encoder-decoder with skip connections of Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, CVPR 2018).

    z (noise, in_channels) --[level 1]--> ... --[level 5]
    level i (input x_i):  skip_i = CBA_1x1(x_i)                          (skip[i] channels; none if 0)
                          x_{i+1} = CBA_3x3(CBA_3x3/2(x_i))              (down[i] channels, stride 2 first)
    back up, i = 5 .. 1:  y = bilinear x2 (y);  y = BN(concat(skip_i, y));  y = CBA_1x1(CBA_3x3(y))  (up[i])
    out = sigmoid(conv_1x1(y) -> out_channels)
    CBA = conv -> BatchNorm -> LeakyReLU(0.2)

The paper's SR and denoising net ('skip', supplementary material and the authors' notebooks): 5 levels
of 128 channels down and up, 4-channel skips, 32 noise channels, bilinear upsampling.  Reflection
padding there; edge replication here ('replicate' padding, the nearest padding this zoo has).  Input
sides must be multiples of 2^levels (:func:`visionfw.dip.deep_image_prior` pads the noise and crops).
"""

from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import register_model

PAPER = "Ulyanov, Vedaldi, Lempitsky, Deep Image Prior, CVPR 2018"


def hourglass(in_channels=32, out_channels=3, down=(128,) * 5, up=(128,) * 5, skip=(4,) * 5, padding="replicate"):
    """DIP's skip hourglass with len(down) levels; ``down``/``up``/``skip`` give each level's channels."""
    if not len(down) == len(up) == len(skip):
        from visionfw.errors import SpecError

        raise SpecError(f"hourglass: down={down}, up={up} and skip={skip} must have one entry per level.")
    g = Graph(
        f"DIP_hourglass_{len(down)}x{max(down)}",
        inputs=[(None, None, in_channels)],
        defaults={"Conv2D": {"kernel_size": 3, "padding": padding}},
    )

    def cba(x, filters, kernel_size=3, strides=1):
        x = g.conv(x, filters, kernel_size, **({"strides": strides} if strides != 1 else {}))
        return g.act(g.norm(x), "LeakyReLU", negative_slope=0.2)

    skips, x = [], g.input
    for d, s in zip(down, skip):
        skips.append(cba(x, s, 1) if s else None)
        x = cba(cba(x, d, strides=2), d)
    for i in reversed(range(len(down))):
        x = g.upsample(x, "Interpolate", scale=2, mode="bilinear")
        if skips[i] is not None:
            x = g.norm(g.concat(skips[i], x))
        x = cba(cba(x, up[i]), up[i], 1)
    g.act(g.conv(x, out_channels, 1), "sigmoid")
    return g.spec(
        meta={
            "task": "dip",
            "levels": len(down),
            "multiple_of": 2 ** len(down),
            "paper": PAPER,
            "in_channels": in_channels,
        }
    )


register_model(
    "dip_hourglass",
    hourglass,
    scales=(),
    task="dip",
    paper=PAPER,
    params=2_224_311,
    description="DIP skip hourglass: 5 levels x 128 channels, 4-channel skips, 32 noise channels",
)
register_model(
    "dip_hourglass_small",
    hourglass,
    scales=(),
    task="dip",
    paper=PAPER,
    down=(32,) * 5,
    up=(32,) * 5,
    params=153_879,
    description="DIP skip hourglass at 32 channels (a CPU budget)",
)
