"""The decision layer: calibration (the network's logit -> a probability), the operating
threshold and the UNCERTAIN band on that scale, and `decide` (-> NORMAL, PNEUMONIA, UNCERTAIN
or OUT_OF_SCOPE). Pure numpy, applied after a predictor; stored in model.json.

Belongs here: fitting and applying those maps. Does not belong here: networks, the scope
check's statistics (it only gives a verdict), files.
"""
