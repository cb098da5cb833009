# monitor in a container: slim Python, a non-root user, config and database on a volume.
#   docker build -t monitor .
#   docker run -d -v monitor-data:/data -e WEBHOOK_SECRET=... monitor
# On first start the shipped config.yaml is copied into /data; edit it there.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MONITOR_CONFIG=/data/config.yaml

WORKDIR /app
COPY pyproject.toml README.md config.yaml ./
COPY monitor ./monitor
COPY spiders ./spiders
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 monitor \
    && mkdir /data && chown monitor:monitor /data

USER monitor
VOLUME ["/data"]
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "[ -f \"$MONITOR_CONFIG\" ] || cp /app/config.yaml \"$MONITOR_CONFIG\"; exec monitor run"]
