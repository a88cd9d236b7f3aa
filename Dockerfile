# Worker image for docker-compose / Kubernetes users. (Not built in this repo's CI: no Docker
# engine runs there; tests/unit/test_deploy_files.py checks the wiring by parsing.)
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY config config
COPY telemetry telemetry
COPY alerts alerts
COPY streams streams
RUN pip install --no-cache-dir . && useradd --system --uid 10001 worker && mkdir -p /data && chown worker /data
USER worker
ENV MISSING_ALERTS_DATA_DIR=/data MISSING_ALERTS_WEB_HOST=0.0.0.0 MISSING_ALERTS_LOG_FORMAT=json
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/healthz')"
ENTRYPOINT ["missing-alerts"]
CMD ["worker"]
