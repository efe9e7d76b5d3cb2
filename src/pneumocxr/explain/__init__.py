"""Layer 4: explanations (Grad-CAM)."""
