"""IMDN (Hui et al., ACM MM 2019): information multi-distillation blocks, lightweight SR.

    LR --conv 3x3--> fea --(IMDB) x 6--> concat(6 outputs) --1x1 + LeakyReLU--> --conv 3x3--(+ fea)-->
       --conv 3x3 to 3*s*s--> PixelShuffle(s) --> SR

    IMDB(x): 3x (conv 3x3 64 + LeakyReLU 0.05, split 16 distilled / 48 remaining), conv 3x3 48 -> 16;
             concat the four 16-channel parts -> CCA -> conv 1x1 64 -> (+ x)
    CCA(y):  y * sigmoid(conv1x1 4->64(relu(conv1x1 64->4(std(y) + mean(y)))))   (contrast-aware attention)

RGB in [0, 1], no mean shift.  Layers carry the names of the official PyTorch modules (``IMDB3_c5``
is ``IMDB3.c5``, ``IMDB3_cca_down``/``_up`` are ``IMDB3.cca.conv_du.0``/``.2``, ``fusion`` is ``c.0``,
``upsampler`` is ``upsampler.0``), so the mapping of the released state dicts can be checked by eye.
"""

from visionfw.zoo.graph import Graph
from visionfw.zoo.registry import WeightsInfo, register_model

PAPER = "Hui et al., Lightweight Image Super-Resolution with Information Multi-distillation Network, ACM MM 2019"
SLOPE = 0.05  # LeakyReLU slope of the official code (block.activation('lrelu', neg_slope=0.05))


def _cca(g, x, k, filters, reduction):
    """Contrast-aware channel attention: the 1x1 convs act on the (N, 1, 1, C) contrast."""
    a = g.layer("ContrastPool", x, name=f"IMDB{k}_cca_contrast")
    a = g.conv(a, filters // reduction, 1, activation="relu", name=f"IMDB{k}_cca_down")
    a = g.conv(a, filters, 1, activation="sigmoid", name=f"IMDB{k}_cca_up")
    return g.multiply(x, a)


def _imdb(g, x, k, filters, distilled, reduction):
    """Information multi-distillation block ``IMDB{k}``: progressive refinement, CCA, 1x1 fusion."""
    parts, y = [], x
    for i in (1, 2, 3):
        y = g.act(g.conv(y, filters, name=f"IMDB{k}_c{i}"), "LeakyReLU", negative_slope=SLOPE)
        parts.append(g.layer("ChannelSlice", y, start=0, stop=distilled))  # kept (distilled)
        y = g.layer("ChannelSlice", y, start=distilled, stop=filters)  # refined further
    parts.append(g.conv(y, distilled, name=f"IMDB{k}_c4"))
    y = _cca(g, g.concat(*parts), k, filters, reduction)
    return g.add(g.conv(y, filters, 1, name=f"IMDB{k}_c5"), x)


def imdn(n_blocks=6, filters=64, distilled=16, reduction=16, channels=3, scale=4, *, shuffle_order="torch"):
    """IMDN: feature conv, n IMDBs, 1x1 fusion of all block outputs, conv + long skip, sub-pixel tail."""
    g = Graph(
        f"IMDN_x{scale}", inputs=[(None, None, channels)], defaults={"Conv2D": {"kernel_size": 3, "padding": "same"}}
    )
    fea = x = g.conv(g.input, filters, name="fea_conv")
    outs = []
    for k in range(1, n_blocks + 1):
        x = _imdb(g, x, k, filters, distilled, reduction)
        outs.append(x)
    x = g.act(g.conv(g.concat(*outs), filters, 1, name="fusion"), "LeakyReLU", negative_slope=SLOPE)
    x = g.add(g.conv(x, filters, name="LR_conv"), fea)
    x = g.conv(x, channels * scale * scale, name="upsampler")
    g.shuffle(x, scale, order=shuffle_order)
    return g.spec(
        meta={"scale": scale, "channels": "rgb" if channels == 3 else "y", "upsampled_input": False, "paper": PAPER}
    )


RECIPE = {
    "loss": "l1",
    "optimizer": "adam",
    "optimizer_kwargs": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    "lr": 2e-4,
    "schedule": "step",
    "schedule_kwargs": {"step_size": 200_000, "gamma": 0.5},
    "batch_size": 16,
    "hr_patch": 192,
    "source": "The official train_IMDN.py (Hui et al. 2019): L1, Adam (PyTorch defaults 0.9/0.999/1e-8), "
    "lr 2e-4 halved every 200 epochs of 1000 iterations (2x10^5 iterations), 1000 epochs, batch 16, "
    "DIV2K 800 images, HR patches 192x192 (--patch_size, LR 96/64/48 at x2/x3/x4), flips/rot90.",
    "notes": "Patch size from the official script (192 HR pixels at every scale); a 64x64 LR patch equals it "
    "at x3 only.",
}

# How the official state dicts load: a plain visionfw.load_weights(model, path).  The layers named
# after their modules (IMDB3_c5 is IMDB3.c5) pair by name, which puts each c5 where the state dict
# has it although the spec writes it after the CCA convs it consumes; the rest (CCA, fusion,
# upsampler) pair in the spec's written order.
LOAD_OPTIONS = (("shuffle_order", "torch"),)
_RELEASE = "the authors' PyTorch release, github.com/Zheng222/IMDN checkpoints/IMDN_x{s}.pth"
# the release's files at a fixed commit of the authors' repository (the sha256 below are of these files)
_URL = "https://github.com/Zheng222/IMDN/raw/f8a43074c7c8ea33ea7c33ce43a698c086007fd0/checkpoints/IMDN_x{s}.pth"
_SHA256 = {
    2: "740b39653592bd3f49955a21cd9e16f2d37f2c413368cc09327601b8fbe42ce1",
    3: "11b1716a19bc16e5e353e1db798d476169338e631eb170c82d765559888cb028",
    4: "e660c38221147217a136debeb99eb304d62d9c0f73ac421ed66281b619719714",
}


# Published: the paper's benchmark table (Y of MATLAB rgb2ycbcr, shave = s, LR = MATLAB imresize of the
# uint8 HR).  Our 'edsr' protocol (uint8 LR, float Y of the uint8 RGB output) reproduces all six
# cells within 0.005 dB.  The 'srcnn' protocol (float LR, rounded Y) is 0.01-0.10 dB lower, and so
# is the official test_IMDN.py, which rounds Y to uint8 (37.91 on Set5 x2): the published numbers
# were measured on the float Y.  tests/test_reproduce_imdn_lapsrn.py lists every number.
register_model(
    "imdn",
    imdn,
    recipe=RECIPE,
    paper=PAPER,
    params={2: 694_404, 3: 703_059, 4: 715_176},
    description="IMDN: 6 information multi-distillation blocks x 64 features, contrast-aware attention",
    weights={
        s: WeightsInfo(
            f"imdn/IMDN_x{s}.pth",
            "pth",
            sha256=h,
            source=_RELEASE.format(s=s),
            url=_URL.format(s=s),
            options=LOAD_OPTIONS,
        )
        for s, h in _SHA256.items()
    },
    published={
        ("Set5", 2): 38.00,
        ("Set14", 2): 33.63,
        ("Set5", 3): 34.36,
        ("Set14", 3): 30.32,
        ("Set5", 4): 32.21,
        ("Set14", 4): 28.58,
    },
    published_protocol="edsr",
)
