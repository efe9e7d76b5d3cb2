"""The scope check: is an image like the chest X-rays a model was trained on? Its statistics
and decision (`check.py`), the features it reads (`features.py`, `reference.py`), its fitting
(`fit.py`) and its record in model.json (`record.py`).

Belongs here: everything about refusing images unlike the training X-rays. Does not belong
here: running a model over files (`inference/`), saving it (`artifact/`), the DICOM header
rules (`data.dicom`, decided before any network runs).
"""
