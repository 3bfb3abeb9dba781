"""EDSR (Lim et al., CVPRW 2017): residual blocks without batch norm, residual scaling, sub-pixel upsampler.

``rgb_range`` mirrors EDSR-PyTorch's option: weights trained on [0, 255] images need
``rgb_range=255`` (the model then scales its [0, 1] input up and its output back down).
"""
from visionfw.registry import register_model

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean, as in EDSR


def edsr(n_blocks=32, filters=256, res_scale=0.1, channels=3, scale=2, rgb_range=1, shuffle_order="tf"):
    """EDSR: MeanShift, head conv, n residual blocks + conv with a long skip, upsampler, tail conv."""
    layer, layer_par = [], []
    node = 0
    if rgb_range != 1:
        layer.append((node, node + 1))
        layer_par.append({"value": float(rgb_range)})
        node += 1
    layer.append((node, node + 1))
    layer_par.append({"mean": RGB_MEAN, "sign": -1})
    node += 1
    head = node + 1
    convo = [(node, head)]
    last = head + n_blocks
    convo.append((last, last + 1))
    merge = [(head, last + 1, last + 2)]
    block = [(i, i + 1) for i in range(head, last)] + [(last + 2, last + 3)]
    convo.append((last + 3, last + 4))
    node = last + 4
    layer.append((node, node + 1))
    layer_par.append({"mean": RGB_MEAN, "sign": 1})
    node += 1
    layer_sub = (["Scale"] if rgb_range != 1 else []) + ["MeanShift", "MeanShift"]
    if rgb_range != 1:
        layer.append((node, node + 1))
        layer_par.append({"value": 1.0 / rgb_range})
        layer_sub.append("Scale")
    if rgb_range != 1:
        layer_par[1]["mean"] = tuple(m * rgb_range for m in RGB_MEAN)
        layer_par[2]["mean"] = tuple(m * rgb_range for m in RGB_MEAN)
    return {
        "name": f"EDSR_{n_blocks}x{filters}_x{scale}",
        "inputs": [(None, None, channels)],
        "defaults": {"Conv2D": {"filters": filters, "kernel_size": 3, "padding": "same"}},
        "layer": layer, "layer_sub": layer_sub, "layer_par": layer_par,
        "convo": convo, "convo_par": [{}, {}, {"filters": channels}],
        "block": block,
        "block_sub": ["resblock"] * n_blocks + ["upsampler"],
        "block_par": [{"res_scale": res_scale}] * n_blocks + [{"scale": scale, "order": shuffle_order}],
        "merge": merge, "merge_sub": ["Add"],
        "meta": {"scale": scale, "channels": "rgb", "upsampled_input": False, "rgb_range": rgb_range,
                 "paper": "Lim et al., Enhanced Deep Residual Networks for Single Image Super-Resolution, "
                          "CVPRW 2017"},
    }


register_model("edsr_baseline", family="edsr", n_blocks=16, filters=64, res_scale=1.0,
               description="EDSR baseline: 16 residual blocks x 64 features")(edsr)
register_model("edsr", family="edsr", n_blocks=32, filters=256, res_scale=0.1,
               description="EDSR (paper): 32 residual blocks x 256 features, residual scale 0.1")(edsr)
