"""EDSR (Lim et al., CVPRW 2017): residual blocks without batch norm, residual scaling, sub-pixel upsampler.

    LR - mean --conv--> head --(resblock) x n_blocks--> conv --(+ head)--> upsampler --conv--> + mean --> SR

``rgb_range`` mirrors EDSR-PyTorch's option: weights trained on [0, 255] images need
``rgb_range=255`` (the model then scales its [0, 1] input up and its output back down).
"""

from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import WeightsInfo, register_model

PAPER = "Lim et al., Enhanced Deep Residual Networks for Single Image Super-Resolution, CVPRW 2017"
RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean, as in EDSR


def edsr(n_blocks=32, filters=256, res_scale=0.1, channels=3, scale=2, *, rgb_range=1, shuffle_order="tf"):
    """EDSR: MeanShift, head conv, n residual blocks + conv with a long skip, upsampler, tail conv."""
    g = Graph(
        f"EDSR_{n_blocks}x{filters}_x{scale}",
        inputs=[(None, None, channels)],
        defaults={"Conv2D": {"filters": filters, "kernel_size": 3, "padding": "same"}},
    )
    mean = tuple(m * rgb_range for m in RGB_MEAN)
    x = g.input
    if rgb_range != 1:
        x = g.layer("Scale", x, value=float(rgb_range))
    x = g.layer("MeanShift", x, mean=mean, sign=-1)
    head = x = g.conv(x)
    for _ in range(n_blocks):
        x = g.block("resblock", x, res_scale=res_scale)
    x = g.add(head, g.conv(x))
    x = g.block("upsampler", x, scale=scale, order=shuffle_order)
    x = g.conv(x, channels)
    x = g.layer("MeanShift", x, mean=mean, sign=1)
    if rgb_range != 1:
        g.layer("Scale", x, value=1.0 / rgb_range)
    return g.spec(
        meta={"scale": scale, "channels": "rgb", "upsampled_input": False, "rgb_range": rgb_range, "paper": PAPER}
    )


RECIPE = {
    "loss": "l1",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 1e-4,
    "schedule": "step",
    "schedule_kwargs": {"step_size": 200_000, "gamma": 0.5},
    "batch_size": 16,
    "lr_patch": 48,
    "source": "Lim et al. 2017, Sec. 4.2: L1, Adam(0.9, 0.999, 1e-8), lr 1e-4 halved every "
    "2x10^5 minibatch updates, batch 16 of 48x48 LR RGB patches.",
    "notes": "",
}

# EDSR-PyTorch's releases (Lim et al.'s code): trained on [0, 255] images, so they load into the
# model built with rgb_range=255; PyTorch PixelShuffle order; the MeanShift convs are skipped.
# Only the hash prefix in each file name is known here (torch.hub's convention: sha256[:8]).
_EDSR_PYTORCH = "https://cv.snu.ac.kr/research/EDSR/models/{}"
_FILES = {
    "edsr_baseline": {
        2: "edsr_baseline_x2-1bc95232.pt",
        3: "edsr_baseline_x3-abf2a44e.pt",
        4: "edsr_baseline_x4-6b446fab.pt",
    },
    "edsr": {2: "edsr_x2-0edfb8a3.pt", 3: "edsr_x3-ea3ef2c6.pt", 4: "edsr_x4-4f62e9ef.pt"},
}


def _official(name):
    return {
        s: WeightsInfo(
            f"edsr/{f}",
            "pth",
            sha256_prefix=f.rsplit("-", 1)[1].split(".")[0],
            url=_EDSR_PYTORCH.format(f),
            source="EDSR-PyTorch (the authors' code) model zoo",
            options=(("shuffle_order", "torch"),),
            hyper=(("rgb_range", 255),),
        )
        for s, f in _FILES[name].items()
    }


# Parameter counts are trainable ones (the two MeanShifts hold non-trainable constants).
register_model(
    "edsr_baseline",
    edsr,
    family="edsr",
    n_blocks=16,
    filters=64,
    res_scale=1.0,
    recipe=RECIPE,
    paper=PAPER,
    params={2: 1_369_859, 3: 1_554_499, 4: 1_517_571},
    params_counted="trainable",
    weights=_official("edsr_baseline"),
    description="EDSR baseline: 16 residual blocks x 64 features",
)
register_model(
    "edsr",
    edsr,
    family="edsr",
    n_blocks=32,
    filters=256,
    res_scale=0.1,
    recipe=RECIPE,
    paper=PAPER,
    params={2: 40_729_603, 3: 43_680_003, 4: 43_089_923},
    params_counted="trainable",
    weights=_official("edsr"),
    description="EDSR (paper): 32 residual blocks x 256 features, residual scale 0.1",
)
