"""VDSR (Kim et al., CVPR 2016): 20 3x3 convolutions and a global residual, one model for all scales.

bicubic-upscaled Y --(conv 3x3 64 + ReLU) x 19--> conv 3x3 -> 1 --(+ input)--> SR Y
"""

from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import WeightsInfo, register_model

PAPER = "Kim et al., Accurate Image Super-Resolution Using Very Deep Convolutional Networks, CVPR 2016"


def vdsr(depth=20, filters=64, channels=1, scale=2):
    """VDSR with ``depth`` conv layers (depth-1 conv+ReLU, one linear output conv) on a pre-upsampled image."""
    g = Graph(
        "VDSR",
        inputs=[(None, None, channels)],
        defaults={"Conv2D": {"filters": filters, "kernel_size": 3, "padding": "same"}},
    )
    x = g.input
    for _ in range(depth - 1):
        x = g.block("conv_relu", x)
    residual = g.block("conv_out", x)
    g.add(g.input, residual)
    return g.spec(
        meta={"scale": scale, "channels": "y" if channels == 1 else "rgb", "upsampled_input": True, "paper": PAPER}
    )


RECIPE = {
    "loss": "l2",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 1e-4,
    "schedule": "constant",
    "schedule_kwargs": {},
    "clipnorm": None,
    "batch_size": 64,
    "hr_patch": 41,
    "source": "Kim et al. 2016, Sec. 4.1: L2, SGD momentum 0.9, weight decay 1e-4, lr 0.1 divided "
    "by 10 every 20 epochs, adjustable gradient clipping to [-0.1/lr, 0.1/lr], batch 64 "
    "of 41x41 sub-images, 291 images, scales 2/3/4 mixed.",
    "notes": "We use Adam 1e-4 without clipping by default (stable without the high-lr SGD trick); "
    "`--optimizer=sgd --lr=0.1 --clipnorm=0.4` is closer to the paper (clipnorm is a "
    "global-norm clip, not the paper's per-value clip).",
}

register_model(
    "vdsr",
    vdsr,
    recipe=RECIPE,
    paper=PAPER,
    params=665_921,
    description="VDSR, 20 layers, one model for every scale",
    weights=WeightsInfo(
        "vdsr/VDSR_Official.mat",
        "vdsr_mat",
        sha256="f613166660840af1a2ca47e31b0337b951e7c4e094364f6135a16d81a55c323c",
        source="converted from the authors' release",
    ),
    # Set14 x2/x3: this library (and an independent numpy re-implementation) gets 33.064/29.804
    published={
        ("Set5", 2): 37.53,
        ("Set5", 3): 33.66,
        ("Set5", 4): 31.35,
        ("Set14", 2): 33.03,
        ("Set14", 3): 29.77,
        ("Set14", 4): 28.01,
    },
    published_protocol="srcnn",
)
