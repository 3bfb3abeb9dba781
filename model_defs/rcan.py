"""RCAN (Zhang et al., ECCV 2018): residual-in-residual groups of channel-attention blocks.

LR - mean --conv--> head --(residual group: (RCAB) x n_blocks + conv + skip) x n_groups--> conv
   --(+ head)--> upsampler --conv--> + mean --> SR
"""

import visionfw
from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import register_model

PAPER = "Zhang et al., Image Super-Resolution Using Very Deep Residual Channel Attention Networks, ECCV 2018"
RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean, as in the authors' code


@visionfw.register_block("rcab")
def rcab(inputs, name, filters=None, reduction=16, res_scale=1.0):
    """RCAN's residual channel-attention block: x + CA(conv(relu(conv(x))))."""
    x = inputs[0]
    filters = filters or x.shape[-1]
    y = visionfw.make_layer("Conv2D", name=f"{name}_conv1", filters=filters, activation="relu")(x)
    y = visionfw.make_layer("Conv2D", name=f"{name}_conv2", filters=filters, activation=None)(y)
    y = visionfw.make_layer("ChannelAttention", reduction=reduction, name=f"{name}_ca")(y)
    if res_scale != 1.0:
        y = visionfw.make_layer("Scale", value=res_scale, name=f"{name}_scale")(y)
    return visionfw.make_layer("Add", name=f"{name}_add")([x, y])


@visionfw.register_block("residual_group")
def residual_group(inputs, name, n_blocks=20, filters=None, reduction=16):
    """RCAN residual group: x + conv(RCAB^n(x))."""
    x = y = inputs[0]
    for b in range(n_blocks):
        y = rcab([y], name=f"{name}_rcab{b}", filters=filters, reduction=reduction)
    y = visionfw.make_layer("Conv2D", name=f"{name}_conv", filters=filters or x.shape[-1], activation=None)(y)
    return visionfw.make_layer("Add", name=f"{name}_add")([x, y])


def rcan(n_groups=10, n_blocks=20, filters=64, reduction=16, channels=3, scale=4, *, shuffle_order="tf"):
    """RCAN: head conv, n_groups residual groups + conv with a long skip, upsampler, tail conv."""
    g = Graph(
        f"RCAN_x{scale}",
        inputs=[(None, None, channels)],
        defaults={"Conv2D": {"filters": filters, "kernel_size": 3, "padding": "same"}},
    )
    x = g.layer("MeanShift", g.input, mean=RGB_MEAN, sign=-1)
    head = x = g.conv(x)
    for _ in range(n_groups):
        x = g.block("residual_group", x, n_blocks=n_blocks, reduction=reduction)
    x = g.add(head, g.conv(x))
    x = g.block("upsampler", x, scale=scale, order=shuffle_order)
    x = g.conv(x, channels)
    g.layer("MeanShift", x, mean=RGB_MEAN, sign=1)
    return g.spec(meta={"scale": scale, "channels": "rgb", "upsampled_input": False, "paper": PAPER})


RECIPE = {
    "loss": "l1",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 1e-4,
    "schedule": "step",
    "schedule_kwargs": {"step_size": 200_000, "gamma": 0.5},
    "batch_size": 16,
    "lr_patch": 48,
    "source": "Zhang et al. 2018, Sec. 4.1: L1, Adam(0.9, 0.999, 1e-8), lr 1e-4 halved every "
    "2x10^5 iterations, batch 16 of 48x48 LR patches.",
    "notes": "",
}

register_model(
    "rcan",
    rcan,
    recipe=RECIPE,
    paper=PAPER,
    params={2: 15_444_643, 3: 15_629_283, 4: 15_592_355},
    params_counted="trainable",
    description="RCAN 10 groups x 20 RCAB, reduction 16",
)
