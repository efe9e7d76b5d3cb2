"""Layer 3: the LightningModule, callbacks, run directories and export."""
