"""Evaluation: metrics with bootstrap CIs, calibration and risk-coverage, plots, evaluation
folders and comparisons of several models, the stress test, inter-rater agreement.

Belongs here: judging answers against labels. Does not belong here: producing the answers
(`inference/`), fitting what a model records (`training/`).
"""
