# securemsg/base:bookworm when a registry answers (docker/base-image.sh picks
# this path; without a registry it builds the same image with mmdebstrap).
# Built without a context: `docker build - < docker/base.Dockerfile`.
FROM debian:bookworm-slim

# Keep in sync with PACKAGES in docker/base-image.sh (which passes it in).
ARG PACKAGES="python3 python3-cryptography python3-nacl gcc make libc6-dev libsodium-dev tcpdump"

RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES; \
    rm -rf /var/lib/apt/lists/*

ENV LANG=C.UTF-8
LABEL securemsg.component=base org.opencontainers.image.title=securemsg-base
CMD ["bash"]
