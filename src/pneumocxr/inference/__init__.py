"""Inference: inputs -> decoded batches -> predictions. Expands what the user gave into files,
decodes them in chunks while the model runs, runs a predictor over the batches, and turns its
logits and scope scores into answers (calibration, scope verdict, decision).

Used by everything above it: training (its validation logits), evaluation, Grad-CAM, the API,
the CLI, the web app and the report. Belongs here: running a model over images. Does not
belong here: fitting anything, metrics, files written (`evaluation/`, `training/`, apps).
"""
