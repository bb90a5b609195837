"""The package's version, here so that the core can write it into recordings without importing the package root."""

__version__ = "0.2.0"
