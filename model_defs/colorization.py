"""Zhang, Isola, Efros: Colorful Image Colorization (ECCV 2016) as dict specs.

Input: L in [0, 100] (one channel), normalised inside the model to (L - 50) / 100.  Output: a
softmax over the Q in-gamut ab bins (``visionfw.colorization.ab_bins``, Q = 261 by our gamut
test; ``n_bins=313`` builds the paper's exact head) at 1/4 of the input resolution.

    conv1: 2 convs 64 (the last with stride 2), ReLU each, BN      -> 1/2
    conv2: 2 convs 128 (stride 2 last), BN                         -> 1/4
    conv3: 3 convs 256 (stride 2 last), BN                         -> 1/8
    conv4: 3 convs 512, BN
    conv5, conv6: 3 convs 512 with dilation 2, BN
    conv7: 3 convs 512, BN
    conv8: ConvTranspose 256 (4x4, stride 2), 2 convs 256, ReLU    -> 1/4
           1x1 conv to Q, softmax
All convs 3x3 'same'.  ``colorization_small`` divides every width by 8 (a CPU-sized variant).
"""
from visionfw.colorization import N_AB_BINS
from visionfw.registry import register_model

_STAGES = (  # (convs, filters, last stride, dilation)
    (2, 64, 2, 1), (2, 128, 2, 1), (3, 256, 2, 1), (3, 512, 1, 1),
    (3, 512, 1, 2), (3, 512, 1, 2), (3, 512, 1, 1),
)


def colorization_eccv16(width_div=1, n_bins=N_AB_BINS):
    """Zhang et al.'s colorization network (conv1..conv8, BN, dilated conv5/6, Q-way softmax)."""
    convo, convo_sub, convo_par, btnrm = [], [], [], []
    node = 1
    layer = [(0, 1)]
    layer_par = [{"mean": (50.0,), "std": (100.0,), "sign": -1}]
    for n_convs, filters, stride, dilation in _STAGES:
        for i in range(n_convs):
            par = {"filters": max(1, filters // width_div), "activation": "relu"}
            if i == n_convs - 1 and stride != 1:
                par["strides"] = stride
            if dilation != 1:
                par["dilation_rate"] = dilation
            convo.append((node, node + 1))
            convo_sub.append("Conv2D")
            convo_par.append(par)
            node += 1
        btnrm.append((node, node + 1))
        node += 1
    f8 = max(1, 256 // width_div)
    convo.append((node, node + 1))
    convo_sub.append("Conv2DTranspose")
    convo_par.append({"filters": f8, "kernel_size": 4, "strides": 2, "padding": "same", "activation": "relu"})
    node += 1
    for _ in range(2):
        convo.append((node, node + 1))
        convo_sub.append("Conv2D")
        convo_par.append({"filters": f8, "activation": "relu"})
        node += 1
    convo.append((node, node + 1))
    convo_sub.append("Conv2D")
    convo_par.append({"filters": n_bins, "kernel_size": 1})
    node += 1
    return {
        "name": f"colorization_eccv16{'' if width_div == 1 else f'_div{width_div}'}_q{n_bins}",
        "inputs": [(None, None, 1)],
        "defaults": {"Conv2D": {"kernel_size": 3, "padding": "same"}},
        "layer": layer, "layer_sub": ["MeanShift"], "layer_par": layer_par,
        "convo": convo, "convo_sub": convo_sub, "convo_par": convo_par,
        "btnrm": btnrm,
        "aactv": [(node, node + 1)], "aactv_sub": ["Softmax"],
        "meta": {"input": "L in [0, 100]", "output": f"{n_bins}-way ab bin probabilities at 1/4 size",
                 "output_factor": 4, "n_bins": n_bins,
                 "paper": "Zhang, Isola, Efros, Colorful Image Colorization, ECCV 2016"},
    }


register_model("colorization_eccv16", family="colorization", scales=(), task="colorize")(colorization_eccv16)
register_model("colorization_small", family="colorization", scales=(), task="colorize",
               width_div=8)(colorization_eccv16)
