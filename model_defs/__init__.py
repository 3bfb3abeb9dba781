"""The visionfw zoo: one file per family, each a function of hyper-parameters returning a spec dict.

The model and block registries import every module here on first use; each registers its names and the
blocks only its family uses.
"""
