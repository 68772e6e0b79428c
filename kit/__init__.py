"""CharacterFlywheel notebook kit: the package the notebooks call.

Importing `kit` is cheap: torch, transformers and friends load only when a function that needs them runs.
"""
__version__ = "0.1.0"
