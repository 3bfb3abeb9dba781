"""The visionfw zoo: one file per family, each a function of hyper-parameters returning a spec dict.

Importing ``visionfw.zoo.registry`` loads every module here, which registers its names.
"""
