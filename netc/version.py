"""The package version, in a module of its own so that the runtime can record it (in run
markers and checkpoints) without importing the package face, which would be an import cycle."""

__version__ = "0.1.0"
