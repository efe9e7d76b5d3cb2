"""Layer 2: the architectures, their weights and their preprocessing contracts."""
