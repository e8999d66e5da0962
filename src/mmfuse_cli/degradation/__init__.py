"""Degradations as data and as operators: the spec, its scaling, operators A / A+, pixel grids, synthesis, training draws, the sidecar, and the one resolve step (flag > sidecar > clean)."""
