"""Training: `TrainConfig`, the phases (head, then fine-tuning), one phase under Lightning with
the tutorial's callbacks, the feature cache of frozen stages, checkpoints and resuming, run
folders, and after the last phase the scope check, the model card and the model folder.

Belongs here: turning data into a model folder. Does not belong here: CLI flags' parsing
(`cli/`), evaluating other folders (`evaluation/`).
"""
