"""The zoo's machinery: the graph writer, the spec builder, layers, blocks and the model registry.

A model is a spec dict of typed links (:mod:`visionfw.zoo.graph` writes one top-down); the builder
(:mod:`visionfw.zoo.builder`) checks it and makes a ``keras.Model``; :mod:`visionfw.zoo.registry` names
the families of ``visionfw.model_defs``."""
