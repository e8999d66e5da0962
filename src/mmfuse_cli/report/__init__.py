"""Per-item result rows (CSV, JSON Lines), the human output on stderr, and the static HTML report."""
