"""The PACS node (docs/PACS.md): an app on the hospital's DICOM network, beside the web app.

    receive.py   the Storage SCP  spool.py    durable spool            worker.py  scoring thread
    delivery.py  retries, dead letter, folder   send.py  C-STORE client   node.py  all of it
    web.py       QIDO-RS / WADO-RS / STOW-RS (`pneumocxr dicom score`)

Belongs here: associations, the spool, delivery, DICOMweb. Does not belong here: how an
instance is scored and what it gets back (`dicom_results/`, which `api.Model.dicom_results`
uses too) or any ML logic.
"""
