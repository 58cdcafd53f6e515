# securemsg/python:latest - the Python server and client (code in /app) with
# python3, cryptography and PyNaCl (--cipher noise), and nothing else: the final
# image is FROM scratch plus the files of those Debian packages and their
# dependencies (docker/rootfs.sh), so no apt, dpkg, perl or compiler (~70 MB).
# Build context: the repository root (see compose.yaml and .dockerignore).
#
# BUILD_BASE, RUNTIME_BASE: the images the build stages start from. By default
# the official Debian image (a registry and its apt mirror are needed);
# docker/lab.sh passes securemsg/base-build:bookworm and
# securemsg/base-runtime:bookworm (docker/base-image.sh), which have the
# packages, so the build uses no network.
ARG BUILD_BASE=debian:bookworm-slim
ARG RUNTIME_BASE=debian:bookworm-slim

# The health check, static: it needs nothing from the runtime's libraries.
FROM ${BUILD_BASE} AS healthcheck
# Same two steps as c.Dockerfile's build stage: one cached layer for both.
ARG BUILD_PACKAGES="gcc make libc6-dev libsodium-dev pkg-config"
COPY docker/ensure-packages.sh /usr/local/sbin/
RUN set -eux; ensure-packages.sh $BUILD_PACKAGES
COPY docker/healthcheck.c /src/
RUN set -eux; \
    gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror -Wshadow -Wconversion \
        -static -s -o /src/healthcheck /src/healthcheck.c

# The runtime's files: the packages' closure, and the two accounts.
FROM ${RUNTIME_BASE} AS runtime
ARG RUNTIME_PACKAGES="python3 python3-cryptography python3-nacl"
COPY docker/ensure-packages.sh docker/rootfs.sh /usr/local/sbin/
RUN set -eux; \
    ensure-packages.sh $RUNTIME_PACKAGES; \
    rootfs.sh /rootfs $RUNTIME_PACKAGES dash; \
    mkdir -p /rootfs/etc /rootfs/tmp; \
    chmod 1777 /rootfs/tmp; \
    printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' \
        'securemsg:x:10001:10001:securemsg:/app:/usr/sbin/nologin' > /rootfs/etc/passwd; \
    printf '%s\n' 'root:x:0:' 'securemsg:x:10001:' > /rootfs/etc/group

# Byte-code compiled at build time: the code is root-owned and read-only for
# the runtime user, so Python could not cache it later.
FROM runtime AS app
COPY python/ /app/
RUN set -eux; python3 -m compileall -q /app

FROM scratch

LABEL org.opencontainers.image.title="securemsg-python" \
      org.opencontainers.image.description="securemsg Python server and client" \
      securemsg.component="python"

# The runtime first: a change of the code leaves this big layer cached.
COPY --from=runtime /rootfs/ /
COPY --from=healthcheck /src/healthcheck /usr/local/bin/healthcheck
COPY --from=app /app/ /app/

ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUTF8=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /app
# The image really runs the programs and secure mode's libraries (exec form: no shell;
# the working directory /app is on python3 -c's path).
RUN ["python3", "-c", "import securemsg, cryptography.hazmat.primitives.ciphers.aead, nacl.pwhash"]

USER 10001:10001
EXPOSE 5000

HEALTHCHECK --interval=2s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "5000"]

# The client is `python3 /app/client.py --host HOST --port PORT [--message M]`.
CMD ["python3", "/app/server.py", "--port", "5000"]
