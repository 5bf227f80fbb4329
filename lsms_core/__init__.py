"""LSMS core: the network, its engine, volumes and geometry, data, training and evaluation.

Nothing in this package imports Qt; it is usable from scripts, notebooks and cluster jobs.
"""

__version__ = "0.1.0"
