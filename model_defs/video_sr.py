"""A small multi-frame SR network for the video TAD experiments (``visionfw.tasks.video``): early fusion.

    T LR frames, concatenated on channels (frame-major: [f_0 rgb, f_1 rgb, ...]) --(conv 3x3 + ReLU) x L-->
    conv 3x3 -> 3*s*s --PixelShuffle(s)--> + bicubic(centre frame, s) --> SR centre frame

No motion compensation: the convolutions see the neighbours as extra channels and learn the small
shifts of a camera pan within their receptive field.  The global residual on the bicubic-upscaled
centre frame is ours (as in VDSR), so the network learns the detail only.
"""

from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import register_model

PAPER = "Kim, Task-aware image downscaling (thesis): TAD as the downscaler of a video SR model"


def video_sr(frames=3, filters=64, n_layers=8, channels=3, scale=2):
    """Early-fusion video SR: ``frames`` LR frames on channels in, the SR centre frame out."""
    g = Graph(
        f"VideoSR_{frames}f_{n_layers}x{filters}_x{scale}",
        inputs=[(None, None, channels * frames)],
        defaults={"Conv2D": {"filters": filters, "kernel_size": 3, "padding": "same"}},
    )
    x = g.input
    for _ in range(n_layers):
        x = g.block("conv_relu", x)
    x = g.shuffle(g.conv(x, channels * scale * scale), scale)
    c = frames // 2
    centre = g.layer("ChannelSlice", g.input, start=channels * c, stop=channels * (c + 1))
    g.add(x, g.bicubic(centre, scale))
    return g.spec(
        meta={
            "scale": scale,
            "channels": "rgb",
            "upsampled_input": False,
            "frames": frames,
            "frame_channels": channels,
            "paper": PAPER,
        }
    )


RECIPE = {
    "loss": "l1",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 2e-4,
    "schedule": "constant",
    "schedule_kwargs": {},
    "batch_size": 16,
    "lr_patch": 32,
    "source": "our recipe (EDSR-style: L1, Adam); the thesis' video SR training is not reproduced here",
    "notes": "train with task='video_sr' (visionfw.tasks.video): task_options downscaler=bicubic or the path of "
    "a trained TAD .keras model, max_motion=HR pixels per frame of the synthetic camera pan.",
}

register_model(
    "video_sr",
    video_sr,
    task="video_sr",
    recipe=RECIPE,
    paper=PAPER,
    frames=3,
    params={2: 270_668, 3: 279_323, 4: 291_440},
    description="early-fusion video SR: 3 frames on channels, 8 conv+ReLU x 64, PixelShuffle",
)
