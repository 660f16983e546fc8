"""The package version, in a module of its own so that any stage can read it without
importing the package's lazy entry points."""

__version__ = "0.1.0"
