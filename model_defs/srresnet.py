"""SRResNet (Ledig et al., CVPR 2017): 16 residual blocks with batch norm, PixelShuffle upsampling.

LR --conv 9x9, PReLU--> head --(conv-BN-PReLU-conv-BN + skip) x n_blocks--> conv, BN --(+ head)-->
   (conv, PixelShuffle x2, PReLU) per x2 --conv 9x9--> SR
"""

import visionfw
from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import register_model

PAPER = "Ledig et al., Photo-Realistic Single Image Super-Resolution Using a GAN, CVPR 2017"


@visionfw.register_block("srresnet_block")
def srresnet_block(inputs, name, filters=None):
    """SRResNet residual block: x + BN(conv(PReLU(BN(conv(x)))))."""
    x = inputs[0]
    filters = filters or x.shape[-1]
    y = visionfw.make_layer("Conv2D", name=f"{name}_conv1", filters=filters, activation=None)(x)
    y = visionfw.make_layer("BatchNormalization", name=f"{name}_bn1")(y)
    y = visionfw.make_layer("PReLU", shared_axes=[1, 2], name=f"{name}_prelu")(y)
    y = visionfw.make_layer("Conv2D", name=f"{name}_conv2", filters=filters, activation=None)(y)
    y = visionfw.make_layer("BatchNormalization", name=f"{name}_bn2")(y)
    return visionfw.make_layer("Add", name=f"{name}_add")([x, y])


def srresnet(n_blocks=16, filters=64, channels=3, scale=4):
    """SRResNet generator (the SRGAN paper's MSE network)."""
    g = Graph(
        f"SRResNet_x{scale}",
        inputs=[(None, None, channels)],
        defaults={
            "Conv2D": {"filters": filters, "kernel_size": 3, "padding": "same"},
            "PReLU": {"shared_axes": [1, 2]},
        },
    )
    head = x = g.act(g.conv(g.input, kernel_size=9), "PReLU")
    for _ in range(n_blocks):
        x = g.block("srresnet_block", x)
    x = g.add(head, g.norm(g.conv(x)))
    x = g.block("upsampler", x, scale=scale, activation="prelu")
    g.conv(x, channels, 9)
    return g.spec(
        meta={"scale": scale, "channels": "rgb" if channels == 3 else "y", "upsampled_input": False, "paper": PAPER}
    )


RECIPE = {
    "loss": "l2",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 1e-4,
    "schedule": "constant",
    "schedule_kwargs": {},
    "batch_size": 16,
    "hr_patch": 96,
    "source": "Ledig et al. 2017, Sec. 3.2: SRResNet trained with MSE, Adam beta_1=0.9, lr 1e-4, "
    "10^6 updates, batch 16 of 96x96 HR sub-images.",
    "notes": "",
}

# The total count includes the batch norms' moving statistics.
register_model(
    "srresnet",
    srresnet,
    recipe=RECIPE,
    paper=PAPER,
    params={2: 1_407_107, 3: 1_591_747, 4: 1_554_883},
    description="SRResNet, 16 blocks, PixelShuffle",
)
