"""dis-eval: disentanglement evaluation on dSprites."""

__version__ = "0.1.0"
