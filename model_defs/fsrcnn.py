"""FSRCNN (Dong et al., ECCV 2016): feature extraction, shrinking, mapping, expanding, deconvolution."""
from visionfw.registry import register_model


@register_model("fsrcnn")
def fsrcnn(d=56, s=12, m=4, channels=1, scale=2):
    """FSRCNN(d, s, m) on an LR Y (channels=1) or RGB image; the 9x9 deconvolution upsamples by scale."""
    convo = [(0, 1)]
    convo_par = [{"filters": d, "kernel_size": 5}]
    aactv = [(1, 2)]
    node = 2
    convo.append((node, node + 1))
    convo_par.append({"filters": s, "kernel_size": 1})
    aactv.append((node + 1, node + 2))
    node += 2
    for _ in range(m):
        convo.append((node, node + 1))
        convo_par.append({"filters": s, "kernel_size": 3})
        aactv.append((node + 1, node + 2))
        node += 2
    convo.append((node, node + 1))
    convo_par.append({"filters": d, "kernel_size": 1})
    aactv.append((node + 1, node + 2))
    node += 2
    convo.append((node, node + 1))
    return {
        "name": f"FSRCNN_d{d}_s{s}_m{m}_x{scale}",
        "inputs": [(None, None, channels)],
        "defaults": {"Conv2D": {"padding": "same"}, "PReLU": {"shared_axes": [1, 2]}},
        "convo": convo,
        "convo_sub": ["Conv2D"] * (len(convo) - 1) + ["Conv2DTranspose"],
        "convo_par": convo_par + [{"filters": channels, "kernel_size": 9, "strides": scale, "padding": "same"}],
        "aactv": aactv,
        "aactv_sub": ["PReLU"] * len(aactv),
        "meta": {"scale": scale, "channels": "y" if channels == 1 else "rgb", "upsampled_input": False,
                 "paper": "Dong et al., Accelerating the Super-Resolution Convolutional Neural Network, ECCV 2016"},
    }
