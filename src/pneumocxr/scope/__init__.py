"""The scope check: is an image like the chest X-rays a model was trained on? Its statistics
and decision (`check.py`), the features it reads (`features.py`, `reference.py`), its fitting
(`fit.py`), its record in model.json (`record.py`), and what a refused image's pixels show
unlike the training X-rays (`differences.py`, for the reason given to the user).

Belongs here: everything about refusing images unlike the training X-rays. Does not belong
here: running a model over files (`inference/`), saving it (`artifact/`), the DICOM header
rules (`data.dicom`, decided before any network runs).
"""
