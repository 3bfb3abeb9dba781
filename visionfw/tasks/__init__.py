"""Training tasks: what a model is trained on and for.  Super-resolution (:mod:`~visionfw.tasks.base`),
perceptual SR with GANs (:mod:`~visionfw.tasks.gan`), task-aware downscaling (:mod:`~visionfw.tasks.tad`),
colorization (:mod:`~visionfw.tasks.colorization`) and multi-frame video SR (:mod:`~visionfw.tasks.video`),
with the pixel losses they share (:mod:`~visionfw.tasks.losses`)."""
