FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# rndc for operators' checks of BIND9 targets (the worker speaks its protocol itself, workers/rndc.py);
# knotc and nsd-control (in knot, nsd) for Knot and NSD targets' unix sockets
RUN apt-get update && apt-get install -y --no-install-recommends bind9-utils bind9-dnsutils knot nsd \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files for whitenoise; this key only exists for the build (the real one comes from .env).
RUN DJANGO_SETTINGS_MODULE=dnsctl.settings SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input -v 0
# Every process runs unprivileged (MiniDNS listens on 5354, the API on 8000).
RUN useradd --system --no-create-home --uid 10001 dnsctl
# The all-servers profile's volume: target setup scripts, and the Knot and NSD control sockets.
RUN mkdir /targets && chown dnsctl /targets
USER dnsctl
EXPOSE 8000 5354/udp 5354/tcp
