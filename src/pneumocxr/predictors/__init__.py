"""Predictors: one interface (`base.Predictor`: [0, 1] gray images -> logits and scope scores)
that a single network with its scope check, an ensemble, flip test-time augmentation and an
ONNX Runtime session all implement.

Belongs here: how a model's numbers are computed from images already decoded. Does not belong
here: decoding and batching files (`inference/`), the decision (`decision/`), model files
(`artifact/`).
"""
