"""Batch jobs over folders as pure stages: fuse (load -> fuse -> write), degrade, evaluate."""
