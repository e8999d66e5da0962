"""The network predicting (e, m) and the safetensors checkpoint format (importing this package needs no torch)."""
