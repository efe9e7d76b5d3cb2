"""Explanations: Grad-CAM heat maps (captum) of a predictor's networks, and their figures.

Belongs here: why a network answered as it did. Does not belong here: the answer itself
(`inference/`).
"""
