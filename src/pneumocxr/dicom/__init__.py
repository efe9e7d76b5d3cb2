"""DICOM in and out: a Storage SCP node, DICOMweb scoring, and the result objects (a TID 1500
Structured Report and a Grad-CAM Secondary Capture per image); docs/PACS.md.

    scoring.py   a DICOM instance -> its Prediction and result datasets (Model.dicom_results)
    report.py    the SR          capture.py   the Secondary Capture    uids.py   result UIDs
    receive.py   the Storage SCP  spool.py    durable spool            worker.py  scoring thread
    delivery.py  retries, dead letter, folder   send.py  C-STORE client   node.py  all of it
    web.py       QIDO-RS / WADO-RS / STOW-RS (`pneumocxr dicom score`)
"""
