"""Perceptual super-resolution (SRGAN, ESRGAN): VGG feature losses, adversarial losses, the ``gan`` task.

``visionfw train --task=gan --model=rrdbnet`` trains the model (the generator) against a
discriminator from the zoo (``task_options``: ``discriminator``, default: the objective preset's)
in the shared training loop: one compiled step updates the generator, then the discriminator on
the same super-resolved batch (no host round trip); both networks, both optimizers' states and the
RNG are checkpointed, so a resumed run equals an uninterrupted one.

The objective (``task_options``: ``objective``, then any :class:`GANObjective` field) is::

    generator:     pixel_weight * pixel(hr, sr) + perceptual_weight * perceptual(hr, sr)
                   + adversarial_weight * adversarial_g(D(hr), D(sr))
    discriminator: adversarial_d(D(hr), D(sr))

with the pixel loss ``config.loss`` (l1 in the ESRGAN recipe) and the presets

* ``esrgan`` (Wang et al. 2018): 1e-2 * L1 + L1 of VGG19 conv5_4 features *before* ReLU
  + 5e-3 * relativistic average GAN (RaGAN);
* ``srgan`` (Ledig et al. 2017): MSE of VGG19 conv5_4 features after ReLU, rescaled by 1/12.75,
  + 1e-3 * the standard (non-saturating BCE) GAN;
* ``realesrgan`` (Wang et al. 2021): L1 + L1 of VGG19 conv1_2, conv2_2, conv3_4, conv4_4, conv5_4
  features before ReLU weighted 0.1, 0.1, 1, 1, 1 + 0.1 * the standard GAN, against the U-Net
  discriminator with spectral norm (``unet_discriminator``).

Discriminators output logits; every adversarial loss is a binary cross-entropy on logits.  Under
data-parallel training the relativistic averages ``E[D(x)]`` are global-batch means (an
all-reduce), as are the batch statistics of a discriminator's batch norms (made synchronised), so
a distributed run equals a single-device one up to summation order.

VGG19 weights (``vgg_weights``): ``'auto'`` (default) finds the Keras file
``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` in ``$VISIONFW_WEIGHTS`` or the other
weights folders (:func:`visionfw.weights.pretrained.weights_dirs`); a path loads that file; ``'imagenet'``
lets Keras download it (internet needed, only when asked); ``'random'`` draws seeded random
weights -- a network with no perceptual meaning, for tests only.
"""

from __future__ import annotations

import dataclasses
import inspect
import os

import numpy as np
import tensorflow as tf

from visionfw.errors import ConfigError, SpecError
from visionfw.tasks.base import SRTask, build_with_policy, register_task
from visionfw.tasks.losses import l1, l2

__all__ = [
    "VGG19_NOTOP_FILE",
    "vgg19_features",
    "PerceptualLoss",
    "bce_with_logits",
    "standard_d_loss",
    "standard_g_loss",
    "relativistic_d_loss",
    "relativistic_g_loss",
    "ADVERSARIAL",
    "GANObjective",
    "OBJECTIVES",
    "GANTask",
]

VGG19_NOTOP_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
# (convs, filters) of VGG19's five blocks; layers are named as in keras.applications.VGG19
_VGG19_BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))
VGG19_CONVS = tuple(f"block{b}_conv{i}" for b, (n, _) in enumerate(_VGG19_BLOCKS, 1) for i in range(1, n + 1))
# Keras' VGG19 weights come from Caffe: BGR input in [0, 255] minus this mean ('caffe'); weights
# converted from torchvision (ESRGAN's) want RGB in [0, 1] normalised by ImageNet mean/std ('imagenet').
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NORMALIZATIONS = ("caffe", "imagenet")


# ----------------------------------------------------------------------------- VGG19 features


def _find_vgg19_file():
    from visionfw.weights.pretrained import weights_dirs

    for folder in weights_dirs():
        for path in (folder / VGG19_NOTOP_FILE, folder / "vgg" / VGG19_NOTOP_FILE):
            if path.is_file():
                return str(path)
    raise ConfigError(
        f"vgg_weights='auto': {VGG19_NOTOP_FILE} is in none of "
        f"{[str(d) for d in weights_dirs()]}. Put it in $VISIONFW_WEIGHTS, pass its path "
        "(task_options vgg_weights=PATH), vgg_weights=imagenet to let Keras download it, or "
        "vgg_weights=random (untrained features: tests only)."
    )


def _vgg19_weights(weights, seed):
    """``{conv name: [kernel, bias]}`` of VGG19's convs for ``weights`` ('auto', a path, 'imagenet', 'random')."""
    if weights == "random":
        # He-normal kernels from a fixed seed: the same network in every process (resume, replicas)
        rng = np.random.default_rng(seed)
        out, c_in = {}, 3
        for name, c_out in zip(VGG19_CONVS, (f for n, f in _VGG19_BLOCKS for _ in range(n))):
            kernel = rng.standard_normal((3, 3, c_in, c_out)) * np.sqrt(2.0 / (9 * c_in))
            out[name] = [kernel.astype(np.float32), np.zeros(c_out, np.float32)]
            c_in = c_out
        return out
    if weights == "auto":
        weights = _find_vgg19_file()
    elif weights != "imagenet" and not os.path.isfile(str(weights)):
        raise ConfigError(
            f"vgg_weights={weights!r}: no such file; give the path of {VGG19_NOTOP_FILE}, 'auto', "
            "'imagenet' (download) or 'random' (tests only)."
        )
    import keras

    vgg = keras.applications.VGG19(include_top=False, weights=str(weights), input_shape=(None, None, 3))
    return {name: vgg.get_layer(name).get_weights() for name in VGG19_CONVS}


def parse_vgg_layers(layer):
    """``{conv name: weight}`` from ``'block5_conv4'``, a weighted sum ``'0.1*block1_conv2+block3_conv4'``
    (weight 1 where none is written; no ``,`` or ``:``, so the text passes through a ``k=v,k=v``
    option list unchanged) or a dict ``{conv name: weight}`` (Real-ESRGAN's ``layer_weights``)."""
    if isinstance(layer, dict):
        items = list(layer.items())
    elif isinstance(layer, str) and layer.strip():
        items = []
        for part in layer.split("+"):
            weight, _, name = part.strip().rpartition("*")
            try:
                items.append((name.strip(), float(weight) if weight.strip() else 1.0))
            except ValueError:
                raise ConfigError(
                    f"vgg_layer={layer!r}: {part.strip()!r} has a weight that is not a number; "
                    "write NAME or WEIGHT*NAME, e.g. 0.1*block1_conv2+block5_conv4."
                ) from None
    else:
        raise ConfigError(
            f"vgg_layer={layer!r}: give a VGG19 conv name such as 'block5_conv4', a weighted sum "
            "such as '0.1*block1_conv2+block5_conv4' or a dict {name: weight}."
        )
    weights = {}
    for name, weight in sorted(items, key=lambda item: VGG19_CONVS.index(item[0]) if item[0] in VGG19_CONVS else -1):
        if name not in VGG19_CONVS:
            raise ConfigError(f"vgg_layer: {name!r} is not a VGG19 conv; use one of {', '.join(VGG19_CONVS)}.")
        if name in weights:
            raise ConfigError(f"vgg_layer: {name!r} is given twice.")
        weights[name] = float(weight)
    return weights  # in VGG order: the order of vgg19_features' outputs


def vgg19_features(layer="block5_conv4", weights="auto", before_activation=True, seed=0):
    """A frozen ``keras.Model``: VGG19 up to conv ``layer`` (e.g. ``'block5_conv4'``, the papers'
    conv5_4), its output taken before the ReLU (ESRGAN) or after it (SRGAN).  ``layer`` may name
    several convs (see :func:`parse_vgg_layers`): the model then returns a list, in VGG order, and
    stops at the deepest.  The input is what the weights expect (see :class:`PerceptualLoss`)."""
    import keras

    wanted = parse_vgg_layers(layer)
    values = _vgg19_weights(weights, seed)
    inp = keras.Input((None, None, 3), dtype="float32")
    x, outputs = inp, []
    for b, (n, filters) in enumerate(_VGG19_BLOCKS, 1):
        for i in range(1, n + 1):
            name = f"block{b}_conv{i}"
            conv = keras.layers.Conv2D(filters, 3, padding="same", name=name, dtype="float32")
            x = conv(x)
            conv.set_weights(values[name])
            relu = keras.layers.ReLU(name=f"{name}_relu", dtype="float32")(x)
            if name in wanted:
                outputs.append(x if before_activation else relu)
            if len(outputs) == len(wanted):
                tag = "_".join(wanted) if len(wanted) <= 2 else f"{len(wanted)}layers"
                model = keras.Model(
                    inp,
                    outputs[0] if len(outputs) == 1 else outputs,
                    name=f"vgg19_{tag}{'_pre' if before_activation else ''}",
                )
                model.trainable = False
                return model
            x = relu
        x = keras.layers.MaxPooling2D(2, name=f"block{b}_pool", dtype="float32")(x)
    raise AssertionError("unreachable: the layers were checked")


class PerceptualLoss:
    """``sum_l w_l * criterion(scale * phi_l(hr), scale * phi_l(sr))`` with ``phi_l`` the VGG19
    features of RGB [0, 1] images at the layers of ``layer`` (one, or weighted several: see
    :func:`parse_vgg_layers`; Real-ESRGAN sums conv1_2 .. conv5_4 with weights 0.1, 0.1, 1, 1, 1).

    ``normalization``: ``'caffe'`` for Keras' VGG19 weights (BGR, [0, 255], mean subtracted) or
    ``'imagenet'`` (ImageNet mean/std on RGB [0, 1], for weights converted from torchvision, as
    ESRGAN uses).  Build it inside the strategy's scope when training distributed.
    """

    def __init__(
        self,
        layer="block5_conv4",
        weights="auto",
        *,
        before_activation=True,
        criterion="l1",
        normalization="caffe",
        feature_scale=1.0,
        seed=0,
    ):
        if criterion not in ("l1", "l2"):
            raise ConfigError(f"feature_criterion={criterion!r}: use l1 or l2.")
        if normalization not in NORMALIZATIONS:
            raise ConfigError(f"vgg_normalization={normalization!r}: use one of {NORMALIZATIONS}.")
        self.layer_weights = list(parse_vgg_layers(layer).values())
        self.features = vgg19_features(layer, weights, before_activation, seed)
        self.criterion = l1 if criterion == "l1" else l2
        self.normalization = normalization
        self.feature_scale = float(feature_scale)

    def normalize(self, rgb):
        rgb = tf.cast(rgb, tf.float32)
        if self.normalization == "imagenet":
            return (rgb - tf.constant(_IMAGENET_MEAN)) / tf.constant(_IMAGENET_STD)
        return rgb[..., ::-1] * 255.0 - tf.constant(_CAFFE_BGR_MEAN)

    def __call__(self, hr, sr):
        n = tf.shape(hr)[0]
        # one pass over both batches; the HR features are a fixed target
        outputs = self.features(self.normalize(tf.concat([tf.cast(hr, sr.dtype), sr], 0)), training=False)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        total = 0.0
        for weight, both in zip(self.layer_weights, outputs):
            target, pred = tf.stop_gradient(both[:n]), both[n:]
            total += weight * self.criterion(target * self.feature_scale, pred * self.feature_scale)
        return total


# ----------------------------------------------------------------------------- adversarial losses


def bce_with_logits(logits, target):
    """Mean binary cross-entropy of ``sigmoid(logits)`` against the constant label ``target`` (0 or 1)."""
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), float(target)), logits=logits)
    )


def _global_mean(x):
    """Mean of ``x`` over the *global* batch: inside ``strategy.run`` the replicas' means are
    all-reduced (equal slices, so the mean of means), and the gradient flows back through it."""
    mean = tf.reduce_mean(tf.cast(x, tf.float32))
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return mean
    return ctx.all_reduce(tf.distribute.ReduceOp.MEAN, mean)


def standard_d_loss(real_logits, fake_logits):
    """SRGAN's discriminator loss: BCE(D(hr), 1) + BCE(D(sr), 0)."""
    return bce_with_logits(real_logits, 1.0) + bce_with_logits(fake_logits, 0.0)


def standard_g_loss(real_logits, fake_logits):
    """The non-saturating generator loss BCE(D(sr), 1) (``real_logits`` unused)."""
    return bce_with_logits(fake_logits, 1.0)


def relativistic_d_loss(real_logits, fake_logits):
    """ESRGAN's RaGAN discriminator loss:
    ``(BCE(C(hr) - E[C(sr)], 1) + BCE(C(sr) - E[C(hr)], 0)) / 2``."""
    real, fake = tf.cast(real_logits, tf.float32), tf.cast(fake_logits, tf.float32)
    return 0.5 * (bce_with_logits(real - _global_mean(fake), 1.0) + bce_with_logits(fake - _global_mean(real), 0.0))


def relativistic_g_loss(real_logits, fake_logits):
    """ESRGAN's RaGAN generator loss, the symmetric one:
    ``(BCE(C(hr) - E[C(sr)], 0) + BCE(C(sr) - E[C(hr)], 1)) / 2``."""
    real, fake = tf.cast(real_logits, tf.float32), tf.cast(fake_logits, tf.float32)
    return 0.5 * (bce_with_logits(real - _global_mean(fake), 0.0) + bce_with_logits(fake - _global_mean(real), 1.0))


ADVERSARIAL = {
    "standard": (standard_d_loss, standard_g_loss),
    "relativistic": (relativistic_d_loss, relativistic_g_loss),
}


# ----------------------------------------------------------------------------- the objective


@dataclasses.dataclass(frozen=True)
class GANObjective:
    """The weights and kinds of the loss terms (module docstring); defaults: ESRGAN."""

    pixel_weight: float = 1e-2
    perceptual_weight: float = 1.0
    adversarial_weight: float = 5e-3
    adversarial: str = "relativistic"
    vgg_layer: str = "block5_conv4"
    before_activation: bool = True
    feature_criterion: str = "l1"
    feature_scale: float = 1.0
    vgg_weights: str = "auto"
    vgg_normalization: str = "caffe"

    def __post_init__(self):
        if self.adversarial not in ADVERSARIAL:
            raise ConfigError(f"adversarial={self.adversarial!r}: use one of {sorted(ADVERSARIAL)}.")

    @classmethod
    def from_options(cls, options):
        """``{'objective': preset name, field: value, ...}`` -> the preset with the fields replaced."""
        options = dict(options)
        name = options.pop("objective", "esrgan")
        if name not in OBJECTIVES:
            raise ConfigError(f"objective={name!r}: use one of {sorted(OBJECTIVES)}.")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ConfigError(
                f"task_options: {unknown[0]!r} is not a gan option; use objective, discriminator, "
                f"discriminator_kwargs, d_lr_scale, pretrained or one of {sorted(fields)}."
            )
        return dataclasses.replace(OBJECTIVES[name], **options)

    def d_loss(self, real_logits, fake_logits):
        return ADVERSARIAL[self.adversarial][0](real_logits, fake_logits)

    def g_terms(self, hr, sr, real_logits, fake_logits, pixel_fn, perceptual_fn):
        """``{'pixel', 'perceptual', 'adversarial'}``: the generator's unweighted terms (absent ones 0)."""
        zero = tf.constant(0.0)
        return {
            "pixel": tf.cast(pixel_fn(hr, sr), tf.float32) if self.pixel_weight else zero,
            "perceptual": perceptual_fn(hr, sr) if perceptual_fn is not None else zero,
            "adversarial": ADVERSARIAL[self.adversarial][1](real_logits, fake_logits),
        }

    def g_loss(self, terms):
        return (
            self.pixel_weight * terms["pixel"]
            + self.perceptual_weight * terms["perceptual"]
            + self.adversarial_weight * terms["adversarial"]
        )


REAL_ESRGAN_LAYERS = "0.1*block1_conv2+0.1*block2_conv2+block3_conv4+block4_conv4+block5_conv4"
OBJECTIVES = {
    "esrgan": GANObjective(),
    "srgan": GANObjective(
        pixel_weight=0.0,
        adversarial="standard",
        adversarial_weight=1e-3,
        before_activation=False,
        feature_criterion="l2",
        feature_scale=1.0 / 12.75,
    ),
    # Real-ESRGAN (train_realesrgan_x4plus.yml): L1 + five VGG19 layers before ReLU + 0.1 vanilla GAN
    # against the U-Net discriminator
    "realesrgan": GANObjective(
        pixel_weight=1.0, adversarial="standard", adversarial_weight=0.1, vgg_layer=REAL_ESRGAN_LAYERS
    ),
}
# the discriminator each preset's paper trains against, used when task_options name none
PRESET_DISCRIMINATOR = {
    "esrgan": "esrgan_discriminator",
    "srgan": "srgan_discriminator",
    "realesrgan": "unet_discriminator",
}


# ----------------------------------------------------------------------------- the task


class GANTask(SRTask):
    """``--task=gan``: the model is the generator of an SR GAN (module docstring).

    ``task_options``: ``discriminator`` (a zoo name of task 'discriminator'; default: the preset's,
    ``esrgan_discriminator``, ``srgan_discriminator`` or ``unet_discriminator``; a fixed-size one is
    built for the HR patch ``lr_patch * scale``), ``discriminator_kwargs``,
    ``pretrained`` (a PSNR-trained generator, ``.keras`` or ``.weights.h5``, loaded before
    training: the ESRGAN recipe), ``objective`` and any :class:`GANObjective` field.  The
    discriminator uses the run's optimizer, lr schedule (times ``d_lr_scale``, default 1),
    optimizer options and clipnorm.  Logged: ``g_loss`` (also the run's ``loss``), ``d_loss``, ``d_real``/``d_fake``
    (mean sigmoid of D on HR / SR) and the generator's unweighted ``pixel``, ``perceptual`` and
    ``adversarial`` terms.
    """

    name = "gan"
    metric_names = ("g_loss", "d_loss", "d_real", "d_fake", "pixel", "perceptual", "adversarial")

    def __init__(self, config):
        super().__init__(config)
        options = dict(config.task_options or {})
        preset = options.get("objective", "esrgan")
        self.discriminator_name = options.pop("discriminator", PRESET_DISCRIMINATOR.get(preset))
        self.d_lr_scale = options.pop("d_lr_scale", 1.0)
        if isinstance(self.d_lr_scale, bool) or not isinstance(self.d_lr_scale, (int, float)) or self.d_lr_scale <= 0:
            raise ConfigError(
                f"task_options d_lr_scale={self.d_lr_scale!r} must be a positive number (the "
                "discriminator's learning rate is the run's schedule times it)."
            )
        self.discriminator_kwargs = dict(options.pop("discriminator_kwargs", None) or {})
        self.pretrained = options.pop("pretrained", None)
        self.objective = GANObjective.from_options(options)
        if config.clipnorm and config.distribute:
            raise ConfigError(
                "task gan: clipnorm under a distribution strategy would clip per replica; leave "
                "clipnorm unset or train on one device."
            )
        self.discriminator = self.d_optimizer = self.perceptual = None

    # -- networks and optimizers (in the strategy's scope) ---------------------------------
    def discriminator_spec(self):
        from visionfw.zoo.registry import get_spec, model_entry

        entry = model_entry(self.discriminator_name)
        if entry.task != "discriminator":
            raise ConfigError(
                f"discriminator={self.discriminator_name!r} is a {entry.task!r} model; use one of "
                "task 'discriminator' (the task column of `visionfw models`)."
            )
        kwargs = dict(self.discriminator_kwargs)
        sized = (
            "input_size" in inspect.signature(entry.fn).parameters
            and "input_size" not in entry.hyper
            and "input_size" not in kwargs
        )
        if sized:
            kwargs["input_size"] = int(self.config.lr_patch) * int(self.config.scale)  # the HR patch
        try:
            spec = get_spec(self.discriminator_name, **kwargs)
        except SpecError as exc:
            if not sized:
                raise
            raise ConfigError(
                f"task gan: discriminator {self.discriminator_name!r} is sized to the HR patch, "
                f"--lr_patch * --scale = {kwargs['input_size']}, which it cannot take ({exc}). Change "
                "--lr_patch, or pick a fully convolutional discriminator (task_options "
                "discriminator=unet_discriminator)."
            ) from None
        if tf.distribute.get_strategy().num_replicas_in_sync > 1 and _uses_batch_norm(spec):
            # batch statistics of the global batch, as on one device
            defaults = spec.setdefault("defaults", {})
            defaults["BatchNormalization"] = dict(defaults.get("BatchNormalization", {}), synchronized=True)
        return spec

    def build_training_state(self, model, schedule):
        import keras

        from visionfw.train.optimizers import make_optimizer

        c, policy = self.config, model.dtype_policy.name
        self.discriminator = build_with_policy(self.discriminator_spec(), None if policy == "float32" else policy)
        if self.d_lr_scale != 1.0:
            from visionfw.train.schedules import ScaledLR

            schedule = ScaledLR(schedule, self.d_lr_scale)
        opt = make_optimizer(c.optimizer, schedule, c.clipnorm, **(c.optimizer_kwargs or {}))
        self.d_optimizer = keras.optimizers.LossScaleOptimizer(opt) if policy == "mixed_float16" else opt
        self.d_optimizer.build(self.discriminator.trainable_variables)
        o = self.objective
        if o.perceptual_weight:
            self.perceptual = PerceptualLoss(
                o.vgg_layer,
                o.vgg_weights,
                before_activation=o.before_activation,
                criterion=o.feature_criterion,
                normalization=o.vgg_normalization,
                feature_scale=o.feature_scale,
                seed=int(c.seed),
            )
        if self.pretrained:
            from visionfw.weights.loader import load_weights

            load_weights(model, self.pretrained)

    def state_variables(self):
        return list(self.discriminator.weights) + list(self.d_optimizer.variables)

    # -- the compiled step (per replica) ----------------------------------------------------
    def update_step(self, model, optimizer, batch, replicas):
        """Generator update with D fixed, then discriminator update on the same (detached) SR batch."""
        lr, hr = batch
        d, objective = self.discriminator, self.objective
        with tf.GradientTape() as tape:
            sr = model(lr, training=True)
            real_logits = tf.stop_gradient(d(hr, training=True))
            terms = objective.g_terms(hr, sr, real_logits, d(sr, training=True), self.loss_fn, self.perceptual)
            g_loss = objective.g_loss(terms)
            scaled = optimizer.scale_loss(g_loss / replicas)
        optimizer.apply(tape.gradient(scaled, model.trainable_variables), model.trainable_variables)

        fake = tf.stop_gradient(sr)
        with tf.GradientTape() as tape:
            real_logits, fake_logits = d(hr, training=True), d(fake, training=True)
            d_loss = objective.d_loss(real_logits, fake_logits)
            scaled = self.d_optimizer.scale_loss(d_loss / replicas)
        self.d_optimizer.apply(tape.gradient(scaled, d.trainable_variables), d.trainable_variables)

        metrics = dict(
            terms,
            g_loss=g_loss,
            d_loss=d_loss,
            _outputs=sr,
            d_real=tf.reduce_mean(tf.sigmoid(tf.cast(real_logits, tf.float32))),
            d_fake=tf.reduce_mean(tf.sigmoid(tf.cast(fake_logits, tf.float32))),
        )
        return g_loss, metrics


def _uses_batch_norm(spec):
    return any(sub == "BatchNormalization" for key, subs in spec.items() if key.endswith("_sub") for sub in subs)


register_task("gan", GANTask)
