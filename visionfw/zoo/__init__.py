"""The zoo's machinery: the graph writer, the spec checker and builder, layers, blocks and the model registry.

A model is a spec dict of typed links (:mod:`~visionfw.zoo.spec_format`; :mod:`~visionfw.zoo.graph` writes
one top-down); :mod:`~visionfw.zoo.validation` (with :mod:`~visionfw.zoo.spec_links`) checks it and
:mod:`~visionfw.zoo.builder` makes a ``keras.Model``; :mod:`~visionfw.zoo.parts` holds the layer and block
registries, :mod:`~visionfw.zoo.blocks` the blocks several families share, :mod:`~visionfw.zoo.layers` the
custom layers, and :mod:`~visionfw.zoo.registry` names the families of ``visionfw.model_defs``."""
