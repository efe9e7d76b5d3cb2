"""Networks: pure `nn.Module`s behind one registry (a new architecture is one file and one line
in `registry.py`), their pretrained weights' sources, BatchNorm folding and pooled stage
features.

Belongs here: what a network computes from its input tensor, its stages, its input size and
normalisation, where its ImageNet weights come from. Does not belong here: the scope check,
calibration, thresholds, labels, model folders (`scope/`, `decision/`, `artifact/` wrap a
network; a network imports only torch, `data.preprocessing` and the task's constants).
"""
