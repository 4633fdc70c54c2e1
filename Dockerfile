# One image for every service: `aiops worker SERVICE` picks what runs.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 AIOPS_DATA_DIR=/var/lib/aiops
WORKDIR /app
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu . \
 && useradd --uid 10001 --create-home aiops && mkdir -p /var/lib/aiops && chown aiops /var/lib/aiops
USER 10001
ENTRYPOINT ["aiops"]
CMD ["up"]
