# monitor in a container: slim Python, a non-root user, config and database on a volume.
#   docker build -t monitor .
#   docker run -d -v monitor-data:/data -e WEBHOOK_SECRET=... monitor
#   docker run -d -v "$PWD/data:/data" monitor                        # a host folder: chowned to 10001
#   docker run -d -v "$PWD/data:/data" --user "$(id -u):$(id -g)" monitor   # or kept yours
# On first start the shipped config.yaml is copied into /data; edit it there. The entrypoint
# (docker-entrypoint.sh) gives /data to the monitor user (uid 10001) and drops root.
#
# Health: the shipped config serves /healthz on 127.0.0.1:8080 inside the container
# (`http: {listen: ...}`); the HEALTHCHECK asks it. Another port: -e MONITOR_HTTP_PORT=...;
# with http.auth.token set: -e MONITOR_HTTP_TOKEN=...; a config without `http:`:
# -e MONITOR_HTTP_PORT=off (or --no-healthcheck). To scrape /metrics from outside, listen on
# 0.0.0.0:8080 with a token and publish the port (-p 8080:8080).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MONITOR_CONFIG=/data/config.yaml \
    MONITOR_HTTP_PORT=8080

WORKDIR /app
COPY pyproject.toml README.md config.yaml docker-entrypoint.sh ./
COPY monitor ./monitor
COPY spiders ./spiders
RUN pip install --no-cache-dir . \
    && groupadd --gid 10001 monitor && useradd --create-home --uid 10001 --gid 10001 monitor \
    && mkdir /data && chown monitor:monitor /data \
    && chmod 0755 /app/docker-entrypoint.sh

# No USER: the entrypoint starts as root only to fix /data's ownership, then runs as 10001.
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "monitor.healthcheck"]
ENTRYPOINT ["/app/docker-entrypoint.sh"]
CMD ["monitor", "run"]
