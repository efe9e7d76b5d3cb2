"""Data: find images, labels and patients (class folders or a labels CSV); split them and keep
the split (`splits.csv`); decode files and DICOM into 8-bit gray pixels, with the DICOM header
rules that put an image out of scope, and trim their uniform borders; the preprocessing
contract; augmentation, acquisition corruptions and synthetic outliers.

Belongs here: everything about images before a network sees them. Does not belong here:
networks, thresholds, model files.
"""
