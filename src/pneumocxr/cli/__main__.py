"""`python -m pneumocxr.cli`."""

from pneumocxr.cli import main

main()
