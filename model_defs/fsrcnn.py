"""FSRCNN (Dong et al., ECCV 2016): feature extraction, shrinking, mapping, expanding, deconvolution.

LR --conv 5x5 d, PReLU--> --conv 1x1 s, PReLU--> (conv 3x3 s, PReLU) x m --> conv 1x1 d, PReLU
   --deconv 9x9 stride r--> SR
"""

from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import register_model

PAPER = "Dong et al., Accelerating the Super-Resolution Convolutional Neural Network, ECCV 2016"


def fsrcnn(d=56, s=12, m=4, channels=1, scale=2):
    """FSRCNN(d, s, m) on an LR Y (channels=1) or RGB image; the 9x9 deconvolution upsamples by scale."""
    g = Graph(
        f"FSRCNN_d{d}_s{s}_m{m}_x{scale}",
        inputs=[(None, None, channels)],
        defaults={"Conv2D": {"padding": "same"}, "PReLU": {"shared_axes": [1, 2]}},
    )
    x = g.act(g.conv(g.input, d, 5), "PReLU")  # feature extraction
    x = g.act(g.conv(x, s, 1), "PReLU")  # shrinking
    for _ in range(m):
        x = g.act(g.conv(x, s, 3), "PReLU")  # mapping
    x = g.act(g.conv(x, d, 1), "PReLU")  # expanding
    g.conv(x, channels, 9, cls="Conv2DTranspose", strides=scale, padding="same")
    return g.spec(
        meta={"scale": scale, "channels": "y" if channels == 1 else "rgb", "upsampled_input": False, "paper": PAPER}
    )


RECIPE = {
    "loss": "l2",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 1e-3,
    "schedule": "constant",
    "schedule_kwargs": {},
    "batch_size": 128,
    "lr_patch_by_scale": {2: 10, 3: 7, 4: 6},
    "source": "Dong et al. 2016 (ECCV), Sec. 4.1: MSE, SGD lr 1e-3 (1e-4 for the deconvolution), "
    "LR sub-images 10/7/6 px (x2/x3/x4), 91 images + General-100, Y channel.",
    "notes": "We use Adam 1e-3 for all layers.",
}

register_model("fsrcnn", fsrcnn, recipe=RECIPE, paper=PAPER, params=12_809, description="FSRCNN (d=56, s=12, m=4)")
