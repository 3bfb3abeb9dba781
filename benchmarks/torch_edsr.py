"""EDSR-baseline written in PyTorch, the reference our benchmarks time against (same layers as
``visionfw.get_model('edsr_baseline')``: MeanShift, head conv, 16 residual blocks + conv, PixelShuffle
upsampler, tail conv).  Imported by ``train_throughput.py`` and ``inference_speed.py`` (scripts in this
folder); torch is imported only when a model is made."""

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def edsr_baseline(scale=2, channels=64, blocks=16, mean=DIV2K_MEAN):
    """A fresh ``torch.nn.Module``; the upsampler is one conv + PixelShuffle per factor of ``scale``
    (2 and 3, like :func:`visionfw.zoo.blocks.upsample_factors`)."""
    import torch
    from torch import nn

    from visionfw.zoo.blocks import upsample_factors

    class ResBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1)
            )

        def forward(self, x):
            return x + self.body(x)

    class EDSRBaseline(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.head = nn.Conv2d(3, c, 3, padding=1)
            self.body = nn.Sequential(*[ResBlock(c) for _ in range(blocks)], nn.Conv2d(c, c, 3, padding=1))
            self.up = nn.Sequential(
                *[
                    m
                    for r in upsample_factors(scale)
                    for m in (nn.Conv2d(c, c * r * r, 3, padding=1), nn.PixelShuffle(r))
                ]
            )
            self.tail = nn.Conv2d(c, 3, 3, padding=1)

        def forward(self, x):
            h = self.head(x - self.mean)
            h = h + self.body(h)
            return self.tail(self.up(h)) + self.mean

    return EDSRBaseline(channels)
