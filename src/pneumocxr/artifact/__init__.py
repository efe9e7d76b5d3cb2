"""Model artifacts: the model folder (model.json schema and its integrity record, safetensors
and ONNX writing, loading and validation) and `resolve_model`, which turns what a user names
("default", a run folder, a model folder) into a loaded model.

Belongs here: everything about model files. Does not belong here: training or fitting what
they record (`training/`, `scope/`, `decision/`), running them over images (`inference/`).
Nothing here unpickles; no private name crosses between its files.
"""
