# securemsg/python:latest - the Python server and client (code in /app) on the
# base image's python3, with cryptography and PyNaCl for --cipher noise.
# Build context: the repository root (see compose.yaml and .dockerignore).
# Needs securemsg/base:bookworm (docker/base-image.sh); no network is used.

FROM securemsg/base:bookworm AS healthcheck

COPY docker/healthcheck.c /src/
RUN set -eux; \
    gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror -Wshadow -Wconversion -s \
        -o /src/healthcheck /src/healthcheck.c

FROM securemsg/base:bookworm

LABEL org.opencontainers.image.title="securemsg-python" \
      org.opencontainers.image.description="securemsg Python server and client" \
      securemsg.component="python"

RUN set -eux; \
    groupadd --system --gid 10001 securemsg; \
    useradd --system --uid 10001 --gid securemsg --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin securemsg

COPY --from=healthcheck /src/healthcheck /usr/local/bin/healthcheck
COPY python/ /app/

# Byte-code compiled at build time: the code is root-owned and read-only for
# the runtime user, so Python could not cache it later.
RUN set -eux; \
    python3 -m compileall -q /app; \
    python3 -c 'import sys; sys.path.insert(0, "/app"); import securemsg'

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /app
USER 10001:10001
EXPOSE 5000

HEALTHCHECK --interval=2s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "5000"]

# The client is `python3 /app/client.py --host HOST --port PORT [--message M]`.
CMD ["python3", "/app/server.py", "--port", "5000"]
