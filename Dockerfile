# The platform's images: one per service, each installing only its own extra of the project's wheel
# (docs/images.md). Build one with its target:
#   docker build --target gateway -t aiops-gateway .
# Targets: ingestion, stream, detection, correlation, rca, gateway, action (`aiops worker SERVICE`),
# platform (`aiops up`: every service and the embedded broker in one container) and detection-cuda (tier 3 on GPU).
# deploy/tests/test_images.py lints this file and proves each target's dependency set without a Docker engine.

# The project's version (pyproject.toml): the wheel's file name and the images' version label.
ARG VERSION=0.1.0
# Where the source lives and which commit, for the OCI labels: --build-arg SOURCE_URL=... --build-arg REVISION=...
ARG SOURCE_URL=""
ARG REVISION=""

# Debian 12 with CPython 3.11.14: the tag for people, the digest (of the multi-architecture index) for the build.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS python
ARG VERSION
ARG SOURCE_URL
ARG REVISION
LABEL org.opencontainers.image.title="aiops-platform" \
      org.opencontainers.image.description="Open AIOps platform: one service of it per image" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# The project's wheel, built once for every target; no image holds the source tree or a compiler.
FROM python AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# uv installs a standalone CPython into the CUDA image (Ubuntu 22.04 packages no supported 3.11); only there.
FROM python AS uv
RUN pip install --no-cache-dir uv==0.13.9

# What every CPU image shares: an unprivileged user with a fixed uid, the data folder on a volume (so the root
# filesystem can be read-only), probes on every interface, JSON logs. Files under /opt/aiops belong to root.
FROM python AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/aiops/bin:${PATH}" \
    AIOPS_DATA_DIR=/var/lib/aiops \
    AIOPS_LOG_FORMAT=json \
    AIOPS_WORKER_HTTP_HOST=0.0.0.0 \
    AIOPS_WORKER_HTTP_PORT=8081
RUN groupadd --system --gid 10001 aiops \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/aiops --no-create-home \
      --shell /usr/sbin/nologin aiops \
 && install --directory --owner=10001 --group=10001 --mode=0750 /var/lib/aiops
VOLUME ["/var/lib/aiops"]
WORKDIR /var/lib/aiops
ENTRYPOINT ["aiops"]

# Each service: the wheel with its one extra into a virtualenv of its own (no pip in it), the probe on 8081.
FROM runtime AS ingestion
ARG VERSION
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/aiops \
 && pip install --no-cache-dir --python /opt/aiops/bin/python "/wheels/aiops_platform-${VERSION}-py3-none-any.whl[ingestion]"
# OTLP/gRPC, and OTLP/HTTP with remote write, Alertmanager webhooks and deployment events.
ENV AIOPS_INGEST_HTTP_HOST=0.0.0.0 \
    AIOPS_INGEST_HTTP_PORT=4318 \
    AIOPS_INGEST_GRPC_HOST=0.0.0.0 \
    AIOPS_INGEST_GRPC_PORT=4317
EXPOSE 4317 4318 8081
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=4)"]
CMD ["worker", "ingestion"]

FROM runtime AS stream
ARG VERSION
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/aiops \
 && pip install --no-cache-dir --python /opt/aiops/bin/python "/wheels/aiops_platform-${VERSION}-py3-none-any.whl[stream]"
EXPOSE 8081
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=4)"]
CMD ["worker", "stream"]

# torch from PyTorch's CPU wheel index (pyproject.toml pins the version): no CUDA libraries in the CPU image.
FROM runtime AS detection
ARG VERSION
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/aiops \
 && pip install --no-cache-dir --python /opt/aiops/bin/python --extra-index-url https://download.pytorch.org/whl/cpu \
      "/wheels/aiops_platform-${VERSION}-py3-none-any.whl[detection,elasticsearch]"
ENV AIOPS_DETECT_DEVICE=cpu
EXPOSE 8081
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=4)"]
CMD ["worker", "detection"]

FROM runtime AS correlation
ARG VERSION
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/aiops \
 && pip install --no-cache-dir --python /opt/aiops/bin/python "/wheels/aiops_platform-${VERSION}-py3-none-any.whl[correlation,elasticsearch]"
EXPOSE 8081
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=4)"]
CMD ["worker", "correlation"]

FROM runtime AS rca
ARG VERSION
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/aiops \
 && pip install --no-cache-dir --python /opt/aiops/bin/python "/wheels/aiops_platform-${VERSION}-py3-none-any.whl[rca,elasticsearch]"
EXPOSE 8081
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=4)"]
CMD ["worker", "rca"]

# The REST API and the operator UI on 8080 (its own /health there); the worker's probes stay on 8081.
FROM runtime AS gateway
ARG VERSION
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/aiops \
 && pip install --no-cache-dir --python /opt/aiops/bin/python "/wheels/aiops_platform-${VERSION}-py3-none-any.whl[gateway,elasticsearch]"
ENV AIOPS_GATEWAY_HOST=0.0.0.0 \
    AIOPS_GATEWAY_PORT=8080
EXPOSE 8080 8081
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
CMD ["worker", "gateway"]

FROM runtime AS action
ARG VERSION
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/aiops \
 && pip install --no-cache-dir --python /opt/aiops/bin/python "/wheels/aiops_platform-${VERSION}-py3-none-any.whl[action,elasticsearch]"
EXPOSE 8081
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=4)"]
CMD ["worker", "action"]

# `aiops up`: every service and the embedded broker in one container (a demo or a single host; `all` = every extra).
FROM runtime AS platform
ARG VERSION
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/aiops \
 && pip install --no-cache-dir --python /opt/aiops/bin/python --extra-index-url https://download.pytorch.org/whl/cpu \
      "/wheels/aiops_platform-${VERSION}-py3-none-any.whl[all]"
ENV AIOPS_INGEST_HTTP_HOST=0.0.0.0 \
    AIOPS_INGEST_HTTP_PORT=4318 \
    AIOPS_INGEST_GRPC_HOST=0.0.0.0 \
    AIOPS_INGEST_GRPC_PORT=4317 \
    AIOPS_GATEWAY_HOST=0.0.0.0 \
    AIOPS_GATEWAY_PORT=8080
EXPOSE 4317 4318 8080 8081
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4318/health', timeout=4)"]
CMD ["up"]

# Tier 3 on a GPU node: PyPI's default torch wheel (built for CUDA, its CUDA libraries as nvidia-* wheels) on
# NVIDIA's CUDA runtime image, CPython 3.11.14 installed by uv (checksummed standalone build). The NVIDIA container
# runtime mounts the host's driver; AIOPS_DETECT_DEVICE=cuda makes a missing GPU an error, not a silent CPU run.
FROM nvidia/cuda:12.9.1-runtime-ubuntu22.04@sha256:d90541b92124899904e0860a4ac1955606b3bc45ad6cc9dab16567fd1111e326 AS detection-cuda
ARG VERSION
ARG SOURCE_URL
ARG REVISION
LABEL org.opencontainers.image.title="aiops-platform" \
      org.opencontainers.image.description="Open AIOps platform: the detection service on CUDA" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/aiops/bin:${PATH}" \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_NO_CACHE=1 \
    AIOPS_DATA_DIR=/var/lib/aiops \
    AIOPS_LOG_FORMAT=json \
    AIOPS_WORKER_HTTP_HOST=0.0.0.0 \
    AIOPS_WORKER_HTTP_PORT=8081 \
    AIOPS_DETECT_DEVICE=cuda
RUN --mount=type=bind,from=uv,source=/usr/local/bin/uv,target=/usr/local/bin/uv \
    --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    uv python install 3.11.14 \
 && uv venv --python 3.11.14 /opt/aiops \
 && uv pip install --python /opt/aiops/bin/python "/wheels/aiops_platform-${VERSION}-py3-none-any.whl[detection,elasticsearch]" \
 && groupadd --system --gid 10001 aiops \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/aiops --no-create-home \
      --shell /usr/sbin/nologin aiops \
 && install --directory --owner=10001 --group=10001 --mode=0750 /var/lib/aiops
VOLUME ["/var/lib/aiops"]
WORKDIR /var/lib/aiops
EXPOSE 8081
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=4)"]
ENTRYPOINT ["aiops"]
CMD ["worker", "detection"]
