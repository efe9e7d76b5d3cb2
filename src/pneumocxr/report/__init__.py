"""The self-contained HTML report of a run folder, built from the files the run wrote.

Belongs here: presenting results. Does not belong here: computing any of them.
"""
