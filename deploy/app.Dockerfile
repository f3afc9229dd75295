# bertctr's own image: workers, the API, topic creation, encoder export.
# torch first (the CPU build; use a CUDA build for a GPU Triton), then the
# project pinned by requirements.lock.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY bertctr bertctr
COPY api api
COPY schemas schemas
COPY streams streams
COPY online_ctr online_ctr
COPY encoder_server encoder_server
COPY simulator simulator
COPY wiring wiring
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -c requirements.lock .
ENTRYPOINT []
