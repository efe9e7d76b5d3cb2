"""Layer 4: prediction, metrics, reports and plots."""
