"""What a DICOM instance gets back (docs/PACS.md): its answer, decided by the header rules of
`data.dicom` and the model, and its result datasets, a TID 1500 Structured Report and a
Grad-CAM Secondary Capture, with UIDs derived from the input and the weights.

    scoring.py   a DICOM instance -> its Prediction and result datasets (Model.dicom_results)
    report.py, report_cache.py   the SR       capture.py   the Secondary Capture
    evidence.py  what the results reference    uids.py   result UIDs   model_info.py  the model

Belongs here: building result objects from a model's answers. Does not belong here: the
network (the node, DICOMweb: `dicom/`), the answers themselves (`inference/`).
"""
