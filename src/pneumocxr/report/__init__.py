"""Layer 5: the self-contained HTML report of a run folder."""
