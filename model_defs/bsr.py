"""BSR (Kong et al., ITU Kaleidoscope 2020): residual blocks with light spatial attention, grouped, and a
feature-map-group (FMG) module that forwards every group's features to the reconstruction.

    LR - mean --conv--> F0 --[group 1]--> F1 --[group 2]--> ... --[group G]--> FG
                          group g: (lsa_resblock x n_blocks) -> conv, + its input
    FMG: concat(F0, F1, ..., FG) --conv 1x1--> conv 3x3 --(+ F0)--> upsampler --conv--> + mean --> SR
    lsa_resblock: x + SA(conv(relu(conv(x)))),  SA(y) = y * sigmoid(conv7x7([mean_c y, max_c y]))

What the paper states (abstract and the issue): residual blocks, a "feature mapping group, a kind of
residual structure that forwards various groups of low-level information to high-level", a "light
spatial attention" on the residual features, fewer than 200 conv layers, RCAN-class accuracy (x2 Set5
38.30 dB, DIV2K training).  The full text was not available to us, so these are our choices, stated
once here: 64 features, G = 6 groups of 10 blocks (191 Conv2D layers at x2, 60 of them the 7x7
attention maps), the FMG as a 1x1 fusion of all G+1 group outputs (RDN/MemNet style) plus a long skip,
CBAM-style spatial attention (7x7 conv on channel mean and max, 99 weights), EDSR's mean shift and
upsampler.
Parameters: 4,875,767 at x2 (4,437,300 of them in the 60 blocks), against 15.6 M for RCAN; the paper's
own count is not known to us.
"""

import visionfw
from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import register_model

PAPER = "Kong et al., BSR: A Balanced Framework for Single Image Super Resolution, ITU Kaleidoscope 2020"
RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean, as in EDSR/RCAN


@visionfw.register_block("lsa_resblock")
def lsa_resblock(inputs, name, filters=None, kernel_size=7, res_scale=1.0):
    """BSR's residual block: x + res_scale * SA(y), y = conv(relu(conv(x))), with the light spatial
    attention SA(y) = y * sigmoid(conv_k([mean_c(y), max_c(y)])): one k x k conv to a single map
    (2*k*k + 1 weights), whatever the width."""
    x = inputs[0]
    filters = filters or x.shape[-1]
    y = visionfw.make_layer("Conv2D", name=f"{name}_conv1", filters=filters, activation="relu")(x)
    y = visionfw.make_layer("Conv2D", name=f"{name}_conv2", filters=filters, activation=None)(y)
    a = visionfw.make_layer("ChannelPool", name=f"{name}_pool")(y)
    a = visionfw.make_layer("Conv2D", name=f"{name}_sa", filters=1, kernel_size=kernel_size, activation="sigmoid")(a)
    y = visionfw.make_layer("Multiply", name=f"{name}_sa_mul")([y, a])  # the map broadcasts over channels
    if res_scale != 1.0:
        y = visionfw.make_layer("Scale", value=res_scale, name=f"{name}_scale")(y)
    return visionfw.make_layer("Add", name=f"{name}_add")([x, y])


def bsr(n_groups=6, n_blocks=10, filters=64, attention_kernel=7, channels=3, scale=2):
    """BSR: head conv, G groups of lsa_resblocks, the FMG fusion with a long skip, upsampler, tail conv."""
    g = Graph(
        f"BSR_G{n_groups}B{n_blocks}_{filters}_x{scale}",
        inputs=[(None, None, channels)],
        defaults={"Conv2D": {"filters": filters, "kernel_size": 3, "padding": "same"}},
    )
    x = g.layer("MeanShift", g.input, mean=RGB_MEAN, sign=-1)
    head = x = g.conv(x)
    groups = [head]
    for _ in range(n_groups):
        y = x
        for _ in range(n_blocks):
            y = g.block("lsa_resblock", y, kernel_size=attention_kernel)
        x = g.add(x, g.conv(y))  # the group's own residual
        groups.append(x)
    # FMG: every group's output reaches the reconstruction directly
    x = g.conv(g.concat(*groups), kernel_size=1)
    x = g.add(head, g.conv(x))
    x = g.block("upsampler", x, scale=scale)
    x = g.conv(x, channels)
    g.layer("MeanShift", x, mean=RGB_MEAN, sign=1)
    return g.spec(meta={"scale": scale, "channels": "rgb", "upsampled_input": False, "paper": PAPER})


RECIPE = {
    "loss": "l2+0.1*l1+0.01*lp",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 1e-4,
    "schedule": "step",
    "schedule_kwargs": {"step_size": 200_000, "gamma": 0.5},
    "batch_size": 16,
    "lr_patch": 48,
    "sampler": "pic",
    "sampler_kwargs": {"intervals": 10},
    "source": "Kong et al. 2020: f = L2 + alpha*L1 + beta*Lp with PIC-balanced batches (random filter "
    "sampling); alpha = 0.1, beta = 0.01 as the issue gives them.",
    "notes": "p of Lp (0.5), the optimiser, lr, schedule, batch and patch are ours (EDSR/RCAN's DIV2K recipe): "
    "the paper's values were not available. `visionfw train --model=bsr` applies the PIC sampler "
    "(--sampler=pipeline opts out).",
}

register_model(
    "bsr",
    bsr,
    recipe=RECIPE,
    paper=PAPER,
    params_counted="trainable",
    params={2: 4_875_767, 3: 5_060_407, 4: 5_023_479},
    published={("Set5", 2): 38.30},
    published_protocol="edsr",
    description="BSR: 6 groups x 10 residual blocks with light spatial attention, FMG fusion",
)
