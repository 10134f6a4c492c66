# loyalty-pulse worker / CLI image.
#   docker build -t loyalty-pulse .
#   docker run --rm -e LOYALTY_PULSE_BROKER=kafka:9092 -e LOYALTY_PULSE_WEB_HOST=0.0.0.0 loyalty-pulse
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 loyalty \
    && useradd --system --uid 10001 --gid loyalty --home-dir /home/loyalty --create-home loyalty \
    && mkdir -p /data \
    && chown loyalty:loyalty /data

WORKDIR /tmp/loyalty-pulse-src
COPY pyproject.toml README.md ./
COPY stream_app ./stream_app
COPY agents ./agents
COPY tables ./tables
COPY loyalty_pulse_dev ./loyalty_pulse_dev
RUN pip install --no-cache-dir . \
    && cd / \
    && rm -rf /tmp/loyalty-pulse-src

USER loyalty
WORKDIR /home/loyalty
# Local table state (RocksDB); rebuilt from the changelog topics when empty.
ENV LOYALTY_PULSE_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 6066
# Liveness of the worker's web server (slim images have no curl). Other commands
# (simulate, replay) serve no HTTP: override or disable the check for them, as
# docker-compose.yml does for the simulator.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LOYALTY_PULSE_WEB_PORT', '6066') + '/healthz', timeout=3)"]

ENTRYPOINT ["loyalty-pulse"]
CMD ["worker"]
