"""ESPCN (Shi et al., CVPR 2016): convolutions at LR resolution, then a sub-pixel shuffle."""
from visionfw.registry import register_model


@register_model("espcn")
def espcn(channels=3, n1=64, n2=32, activation="tanh", scale=2):
    """ESPCN 5-3-3 with tanh as in the paper; RGB by default."""
    return {
        "name": f"ESPCN_x{scale}",
        "inputs": [(None, None, channels)],
        "defaults": {"Conv2D": {"padding": "same"}},
        "convo": [(0, 1), (1, 2), (2, 3)],
        "convo_par": [{"filters": n1, "kernel_size": 5, "activation": activation},
                      {"filters": n2, "kernel_size": 3, "activation": activation},
                      {"filters": channels * scale * scale, "kernel_size": 3}],
        "pslyr": [(3, 4)],
        "pslyr_par": [{"scale": scale}],
        "meta": {"scale": scale, "channels": "y" if channels == 1 else "rgb", "upsampled_input": False,
                 "paper": "Shi et al., Real-Time Single Image and Video Super-Resolution Using an Efficient "
                          "Sub-Pixel Convolutional Neural Network, CVPR 2016"},
    }
