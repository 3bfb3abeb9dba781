"""SRResNet (Ledig et al., CVPR 2017): 16 residual blocks with batch norm, PixelShuffle upsampling."""
from visionfw.registry import register_model


@register_model("srresnet")
def srresnet(n_blocks=16, filters=64, channels=3, scale=4):
    """SRResNet generator (the SRGAN paper's MSE network)."""
    head = 2  # node after the 9x9 conv and its PReLU
    last = head + n_blocks  # output node of the last residual block
    return {
        "name": f"SRResNet_x{scale}",
        "inputs": [(None, None, channels)],
        "defaults": {"Conv2D": {"filters": filters, "kernel_size": 3, "padding": "same"},
                     "PReLU": {"shared_axes": [1, 2]}},
        "convo": [(0, 1), (last, last + 1), (last + 4, last + 5)],
        "convo_par": [{"kernel_size": 9}, {}, {"filters": channels, "kernel_size": 9}],
        "aactv": [(1, 2)],
        "aactv_sub": ["PReLU"],
        "block": [(i, i + 1) for i in range(head, last)] + [(last + 3, last + 4)],
        "block_sub": ["srresnet_block"] * n_blocks + ["upsampler"],
        "block_par": [{}] * n_blocks + [{"scale": scale, "activation": "prelu"}],
        "btnrm": [(last + 1, last + 2)],
        "merge": [(head, last + 2, last + 3)],
        "merge_sub": ["Add"],
        "meta": {"scale": scale, "channels": "rgb" if channels == 3 else "y", "upsampled_input": False,
                 "paper": "Ledig et al., Photo-Realistic Single Image Super-Resolution Using a GAN, CVPR 2017"},
    }
