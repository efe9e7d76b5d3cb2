"""The web app (`pneumocxr serve`): a page and an HTTP API over the same prediction path as
the CLI and the API, with its limits (upload size, concurrency, allowed hosts).

Belongs here: HTTP, uploads, the page. Does not belong here: ML logic of any kind.
"""
