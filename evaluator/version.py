"""The evaluator's version, kept apart from the package's face so that a module below it (provenance) can name it
without importing the public API, which imports that module in turn."""

__version__ = "0.1.0"
