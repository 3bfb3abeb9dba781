"""SRCNN (Dong et al., ECCV 2014 / TPAMI 2016): three convolutions on a bicubic-upscaled image.

    bicubic-upscaled Y --conv f1 x f1, n1, ReLU--> --conv f2 x f2, n2, ReLU--> --conv f3 x f3--> SR Y
        (patch extraction)        (non-linear mapping)          (reconstruction)

The official MATLAB code pads by replicating edge pixels, so the default padding is
'replicate' (zero padding costs about 3 dB with the official weights).
"""

from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import WeightsInfo, register_model

PAPER = "Dong et al., Image Super-Resolution Using Deep Convolutional Networks, TPAMI 2016"


def srcnn(f1=9, f2=1, f3=5, n1=64, n2=32, channels=1, *, padding="replicate", scale=3):
    """SRCNN f1-f2-f3 with n1/n2 feature maps, on a pre-upsampled Y (channels=1) or RGB image."""
    g = Graph(f"SRCNN_{f1}{f2}{f3}", inputs=[(None, None, channels)], defaults={"Conv2D": {"padding": padding}})
    x = g.conv(g.input, n1, f1, activation="relu")
    x = g.conv(x, n2, f2, activation="relu")
    g.conv(x, channels, f3)
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
    "batch_size": 128,
    "hr_patch": 33,
    "source": "Dong et al. 2016 (TPAMI), Sec. 4: MSE, SGD lr 1e-4 (1e-5 in the last layer), "
    "batch 128 of 33x33 sub-images (stride 14) from the 91 images, Y channel.",
    "notes": "We use Adam 1e-4 for all layers, and 'same'-size outputs (the paper's valid "
    "convolution trims 12 px of the 33x33 label to 21x21).",
}
_RELEASE = "the authors' MATLAB release (academic use only)"


def _official(folder, sha256):
    """Official SRCNN .mat files: {scale: WeightsInfo}."""
    return {
        s: WeightsInfo(f"srcnn/{folder}/x{s}.mat", "srcnn_mat", sha256=h, source=_RELEASE) for s, h in sha256.items()
    }


register_model(
    "srcnn_915",
    srcnn,
    family="srcnn",
    f1=9,
    f2=1,
    f3=5,
    recipe=RECIPE,
    paper=PAPER,
    params=8_129,
    description="SRCNN 9-1-5 (Y, bicubic-upscaled input, replicate padding)",
    weights=_official(
        "915_91images",
        {
            2: "51b748297e8669832a4ad27cc4b7eebc6d65d37a77bcb19bef23c1b5f972ea12",
            3: "ef05325a96221ab9399db844bc833f687796a1078bfa6aacc6930bde60ca5b10",
            4: "717c2c6f5196a95959f98953f84a359e56fc415eba190b5db016b25896e74862",
        },
    ),
    published={
        ("Set5", 2): 36.34,
        ("Set5", 3): 32.39,
        ("Set5", 4): 30.09,
        ("Set14", 2): 32.18,
        ("Set14", 3): 29.00,
        ("Set14", 4): 27.20,
    },
    published_protocol="srcnn",
)
register_model(
    "srcnn_935",
    srcnn,
    family="srcnn",
    f1=9,
    f2=3,
    f3=5,
    paper=PAPER,
    params=24_513,
    description="SRCNN 9-3-5 (Y, bicubic-upscaled input, replicate padding)",
    weights=_official("935_imagenet", {3: "d798df50cf1e1b265ae63204da726fd6bf8b0e42c6dd2f18d5fe618576eec553"}),
)
register_model(
    "srcnn_955",
    srcnn,
    family="srcnn",
    f1=9,
    f2=5,
    f3=5,
    paper=PAPER,
    params=57_281,
    description="SRCNN 9-5-5 (Y, bicubic-upscaled input, replicate padding)",
    weights=_official(
        "955_imagenet",
        {
            2: "dc06d52ab0ecfb75a4222a33c06c2c23287cf67abbd75b869a178f6305f8cdc1",
            3: "fa2ee366d328b942b971c80c24f48dc2b015d5ed4b5790070f720ccfb6ab1578",
            4: "3f94150d24e5b60dab2b74f4eaf358aefdc72cbe724d86990435bf877ed452ed",
        },
    ),
    published={
        ("Set5", 2): 36.66,
        ("Set5", 3): 32.75,
        ("Set5", 4): 30.49,
        ("Set14", 2): 32.45,
        ("Set14", 3): 29.30,
        ("Set14", 4): 27.50,
    },
    published_protocol="srcnn",
)
