"""DRRN (Tai, Yang, Liu, CVPR 2017): B recursive blocks of U residual units whose weights are shared.

    bicubic-upscaled Y --[recursive block] x B--> BN-ReLU-conv 3x3 -> 1 --(+ input)--> SR Y
    recursive block b:  H0 = BN-ReLU-conv(x)                       (its own weights)
                        H_u = unit_b(H_{u-1}) + H0, u = 1..U        (unit_b: one set of conv weights)
                        unit_b = BN-ReLU-conv 3x3 - BN-ReLU-conv 3x3 (pre-activation)

Every layer is pre-activated, the input too, as in the authors' Caffe files (DRRN_B1U9_20C128,
DRRN_B1U25_52C128): the two convolutions of a unit are shared across its U recursions (``share=`` of
the graph writer: one Conv2D layer called U times), the batch norms are not (each recursion has its
own BatchNorm + Scale there, so its own statistics here).

Parameters, B1U25 (d = 52): the paper's 297 K counts conv weights only:
1*128*9 + 2*128*128*9 + 128*1*9 = 297,216.  Keras adds the conv biases (385), the BN scales and
offsets (2 + 50*256 + 256 = 13,058 trainable) and the BN moving means/variances (13,058): 310,659
trainable, 323,717 in all (``count_params``).  B1U9 (d = 20) has the same 297,216 conv weights.
"""

from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import register_model

PAPER = "Tai, Yang, Liu, Image Super-Resolution via Deep Recursive Residual Network, CVPR 2017"


def drrn(n_blocks=1, n_units=25, filters=128, channels=1, scale=2):
    """DRRN B``n_blocks``U``n_units``: pre-activation residual units, conv weights shared within a block."""
    g = Graph(
        f"DRRN_B{n_blocks}U{n_units}",
        inputs=[(None, None, channels)],
        defaults={"Conv2D": {"filters": filters, "kernel_size": 3, "padding": "same"}},
    )

    def pre_conv(x, filters=None, share=None):
        """BN-ReLU-conv; ``share``: the node whose conv layer (weights) this one calls again."""
        x = g.act(g.norm(x), "relu")
        return g.conv(x, share=share) if share is not None else g.conv(x, filters)

    x = g.input
    for _ in range(n_blocks):
        h0 = x = pre_conv(x)
        first = None  # the unit's two conv nodes, made by the first recursion
        for _ in range(n_units):
            a = pre_conv(x, share=None if first is None else first[0])
            b = pre_conv(a, share=None if first is None else first[1])
            first = first or (a, b)
            x = g.add(h0, b)
    residual = pre_conv(x, channels)
    g.add(g.input, residual)
    return g.spec(
        meta={
            "scale": scale,
            "channels": "y" if channels == 1 else "rgb",
            "upsampled_input": True,
            "recursions": n_units,
            "conv_weights_shared": True,
            "paper": PAPER,
        }
    )


RECIPE = {
    "loss": "l2",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 1e-4,
    "schedule": "step",
    "schedule_kwargs": {"step_size": 65_360, "gamma": 0.5},
    "clipnorm": None,
    "batch_size": 128,
    "hr_patch": 31,
    "source": "Tai et al. 2017, Sec. 4.1 and the Caffe solver: L2 (Euclidean), 291 images with flips and "
    "rotations, scales 2/3/4 mixed, 31x31 sub-images, batch 128, SGD momentum 0.9, weight decay "
    "1e-4, lr 0.1 halved every 10 epochs (65,360 iterations), adjustable gradient clipping 0.01/lr.",
    "notes": "We use Adam 1e-4 without clipping by default (as for VDSR); `--optimizer=sgd --lr=0.1 "
    "--clipnorm=0.4` is closer to the paper (clipnorm is a global-norm clip, not the per-value "
    "clip). One scale per run, not the paper's mixed-scale set.",
}

# total (count_params); see the module docstring for the 297,216 conv weights of the paper's count
register_model(
    "drrn",
    drrn,
    recipe=RECIPE,
    paper=PAPER,
    params=323_717,  # B1U25: the defaults
    published={
        ("Set5", 2): 37.74,
        ("Set5", 3): 34.03,
        ("Set5", 4): 31.68,
        ("Set14", 2): 33.23,
        ("Set14", 3): 29.96,
        ("Set14", 4): 28.21,
    },
    published_protocol="srcnn",
    description="DRRN B1U25 (52 layers, 297 K conv weights), one model for every scale",
)
register_model(
    "drrn_b1u9",
    drrn,
    recipe=RECIPE,
    paper=PAPER,
    n_blocks=1,
    n_units=9,
    params=307_333,
    description="DRRN B1U9 (20 layers, the same 297 K conv weights)",
)
