"""Per-item results and where they go: rows (CSV, JSON Lines) with the exit codes, and the human lines on stderr.

The HTML report of a run is :mod:`mmfuse_cli.report`'s; this package is the plain record of what each item did.
"""
