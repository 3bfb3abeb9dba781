"""SRCNN (Dong et al., ECCV 2014 / TPAMI 2016): three convolutions on a bicubic-upscaled image.

The official MATLAB code pads by replicating edge pixels, so the default padding is
'replicate' (zero padding costs about 3 dB with the official weights).
"""
from visionfw.registry import register_model


def srcnn(f1=9, f2=1, f3=5, n1=64, n2=32, channels=1, padding="replicate", scale=3):
    """SRCNN f1-f2-f3 with n1/n2 feature maps, on a pre-upsampled Y (channels=1) or RGB image."""
    return {
        "name": f"SRCNN_{f1}{f2}{f3}",
        "inputs": [(None, None, channels)],
        "defaults": {"Conv2D": {"padding": padding}},
        "convo": [(0, 1), (1, 2), (2, 3)],
        "convo_par": [{"filters": n1, "kernel_size": f1, "activation": "relu"},
                      {"filters": n2, "kernel_size": f2, "activation": "relu"},
                      {"filters": channels, "kernel_size": f3}],
        "meta": {"scale": scale, "channels": "y" if channels == 1 else "rgb", "upsampled_input": True,
                 "paper": "Dong et al., Image Super-Resolution Using Deep Convolutional Networks, TPAMI 2016"},
    }


for _f2 in (1, 3, 5):
    register_model(f"srcnn_9{_f2}5", family="srcnn", f1=9, f2=_f2, f3=5,
                   description=f"SRCNN 9-{_f2}-5 (Y, bicubic-upscaled input, replicate padding)")(srcnn)
