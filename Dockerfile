# syntax=docker/dockerfile:1
# The service image (docker-compose.yml). Two stages: the first installs the hashed runtime lock
# and this repository's wheel into a virtual environment; the second copies that environment
# into a slim image that runs as an unprivileged user. No compiler, no sources, no tests, no
# development tools in the final image (issue 24).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/kb
# Dependencies first (a layer that changes only with the lock). --require-hashes: every file
# must match the lock; --no-deps: nothing outside it comes in (torch is not in it: the default
# e5/USE models need no torch; the `st` extra adds it).
COPY requirements.lock ./
RUN /opt/kb/bin/pip install --require-hashes --no-deps -r requirements.lock
# The application as a wheel (not editable): pages, widget, migrations, prompts inside it.
COPY . .
RUN /opt/kb/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/kb/bin/pip install --no-deps /wheels/*.whl \
 && /opt/kb/bin/pip check

FROM python:3.11-slim
# libmagic: file type detection for unstructured.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmagic1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 kb \
 && useradd --system --uid 10001 --gid kb --home-dir /home/kb --create-home --shell /usr/sbin/nologin kb \
 && mkdir -p /data \
 && chown kb:kb /data
COPY --from=build /opt/kb /opt/kb
ENV PATH=/opt/kb/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    SCARF_NO_ANALYTICS=true \
    DO_NOT_TRACK=true \
    KB_DATA_DIR=/data \
    KB_LOG__FORMAT=json
WORKDIR /home/kb
USER kb:kb
EXPOSE 8000
VOLUME ["/data"]
# Ready: the database and the store answer (GET /readyz). Services that do not serve HTTP
# (migrate, ingest-worker) disable it in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["kb", "serve", "--host", "0.0.0.0", "--port", "8000"]
