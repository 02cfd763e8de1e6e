# Knot DNS, PowerDNS (gsqlite3) and NSD from Debian 12: the versions the tests run (README "Backends").
# docker-compose's all-servers profile runs each from the script `manage.py target_config` printed.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends knot pdns-server pdns-backend-sqlite3 sqlite3 \
        nsd curl dnsutils \
    && rm -rf /var/lib/apt/lists/*
