"""Fusing pairs with a loaded model: one FuseConfig, the torch backend (device, precision, channels-last, retry), tiling, colour."""
