"""mmfuse: restore and fuse degraded multi-modal image pairs with a few-step diffusion model."""

__version__ = "0.1.0"
