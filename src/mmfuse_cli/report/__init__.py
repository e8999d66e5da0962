"""Per-item result rows (CSV, JSON Lines) and the human output on stderr."""
