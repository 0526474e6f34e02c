# The app image used by docker-compose.yml. Same pinned install as `make setup`.
FROM python:3.11-slim
WORKDIR /app
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 SCARF_NO_ANALYTICS=true DO_NOT_TRACK=true \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends libmagic1 && rm -rf /var/lib/apt/lists/*
COPY requirements.lock pyproject.toml ./
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && grep -v '^torch==' requirements.lock > /tmp/req.txt \
 && pip install --no-cache-dir --no-deps -r /tmp/req.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e . --config-settings editable_mode=compat
EXPOSE 8000
CMD ["kb", "serve", "--host", "0.0.0.0", "--port", "8000"]
