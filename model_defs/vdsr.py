"""VDSR (Kim et al., CVPR 2016): 20 3x3 convolutions and a global residual, one model for all scales."""
from visionfw.registry import register_model


@register_model("vdsr")
def vdsr(depth=20, filters=64, channels=1, scale=2):
    """VDSR with ``depth`` conv layers (depth-1 conv+ReLU, one linear output conv) on a pre-upsampled image."""
    b = depth - 1
    return {
        "name": "VDSR",
        "inputs": [(None, None, channels)],
        "defaults": {"Conv2D": {"filters": filters, "kernel_size": 3, "padding": "same"}},
        "block": [(i, i + 1) for i in range(b)] + [(b, b + 1)],
        "block_sub": ["conv_relu"] * b + ["conv_out"],
        "merge": [(0, b + 1, b + 2)],
        "merge_sub": ["Add"],
        "meta": {"scale": scale, "channels": "y" if channels == 1 else "rgb", "upsampled_input": True,
                 "paper": "Kim et al., Accurate Image Super-Resolution Using Very Deep Convolutional Networks, "
                          "CVPR 2016"},
    }
