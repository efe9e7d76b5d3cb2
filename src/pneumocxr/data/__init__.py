"""Layer 1: find images, labels and patients; split; decode and cache; augment."""
