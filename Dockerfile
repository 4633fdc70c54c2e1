# One image for every service by default: `aiops worker SERVICE` picks what runs.
# A one-service image installs only that service's extra: --build-arg EXTRAS=ingestion (or stream, detection);
# `aiops up` also needs embedded (and host-metrics for its own host's metrics): EXTRAS=all has them all.
FROM python:3.11-slim
ARG EXTRAS=all
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 AIOPS_DATA_DIR=/var/lib/aiops
WORKDIR /app
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu ".[${EXTRAS}]" \
 && useradd --uid 10001 --create-home aiops && mkdir -p /var/lib/aiops && chown aiops /var/lib/aiops
USER 10001
ENTRYPOINT ["aiops"]
CMD ["up"]
