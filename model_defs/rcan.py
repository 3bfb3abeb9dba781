"""RCAN (Zhang et al., ECCV 2018): residual-in-residual groups of channel-attention blocks."""
from model_defs.edsr import RGB_MEAN
from visionfw.registry import register_model


@register_model("rcan")
def rcan(n_groups=10, n_blocks=20, filters=64, reduction=16, channels=3, scale=4, shuffle_order="tf"):
    """RCAN: head conv, n_groups residual groups + conv with a long skip, upsampler, tail conv."""
    head = 2
    last = head + n_groups
    return {
        "name": f"RCAN_x{scale}",
        "inputs": [(None, None, channels)],
        "defaults": {"Conv2D": {"filters": filters, "kernel_size": 3, "padding": "same"}},
        "layer": [(0, 1), (last + 4, last + 5)],
        "layer_sub": ["MeanShift", "MeanShift"],
        "layer_par": [{"mean": RGB_MEAN, "sign": -1}, {"mean": RGB_MEAN, "sign": 1}],
        "convo": [(1, head), (last, last + 1), (last + 3, last + 4)],
        "convo_par": [{}, {}, {"filters": channels}],
        "block": [(i, i + 1) for i in range(head, last)] + [(last + 2, last + 3)],
        "block_sub": ["residual_group"] * n_groups + ["upsampler"],
        "block_par": [{"n_blocks": n_blocks, "reduction": reduction}] * n_groups
                     + [{"scale": scale, "order": shuffle_order}],
        "merge": [(head, last + 1, last + 2)], "merge_sub": ["Add"],
        "meta": {"scale": scale, "channels": "rgb", "upsampled_input": False,
                 "paper": "Zhang et al., Image Super-Resolution Using Very Deep Residual Channel Attention "
                          "Networks, ECCV 2018"},
    }
