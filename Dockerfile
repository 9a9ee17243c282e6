# ctplan service image: the DICOM SCP (11112) and the HTTP API (8000) in one process.
FROM python:3.11-slim

WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY planner ./planner
COPY dicom_node ./dicom_node
COPY api ./api
COPY sample_series ./sample_series
RUN pip install --no-cache-dir --no-deps . && useradd --system --create-home ctplan \
    && mkdir -p /data && chown ctplan /data

USER ctplan
ENV CTPLAN_HOST=0.0.0.0 \
    CTPLAN_STORAGE_DIR=/data
VOLUME ["/data"]
EXPOSE 11112 8000
CMD ["ctplan", "serve"]
