# A base image from a registry's Debian image (docker/base-image.sh, when a
# registry answers; without one it builds the same image with mmdebstrap).
# Built without a context: `docker build - < docker/base.Dockerfile`.
ARG UPSTREAM=debian:bookworm-slim
FROM ${UPSTREAM}

# docker/base-image.sh passes its BUILD_PACKAGES or RUNTIME_PACKAGES.
ARG PACKAGES
ARG COMPONENT=base

RUN set -eux; \
    test -n "$PACKAGES"; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*

ENV LANG=C.UTF-8
LABEL securemsg.component=${COMPONENT} org.opencontainers.image.title=securemsg-${COMPONENT}
CMD ["bash"]
