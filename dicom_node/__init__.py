"""DICOM networking and persistence: SCP, storage + index, series completion, SCU to PACS.

- :mod:`dicom_node.storage`: files under a root folder plus a SQLite index (``Storage``);
- :mod:`dicom_node.scp`: the receiver (``start_scp``), C-ECHO and C-STORE into a ``Storage``;
- :mod:`dicom_node.scu`: sending to a PACS (``send_datasets``, ``echo``, ``parse_destinations``);
- :mod:`dicom_node.errors`: the exceptions callers branch on.

Never imports FastAPI or ``api``.
"""
