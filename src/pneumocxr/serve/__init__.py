"""The web app (`pneumocxr serve`): a page and an HTTP API over the CLI's prediction code."""
