# securemsg/c:latest - the C server and client, statically linked, on an
# empty image: /server, /client and /usr/local/bin/healthcheck, nothing else.
# Build context: the repository root (see compose.yaml and .dockerignore).
#
# BUILD_BASE: the image the build stage starts from. By default the official
# Debian image (a registry and its apt mirror are needed); docker/lab.sh passes
# securemsg/base-build:bookworm (docker/base-image.sh), which has the packages,
# so the build uses no network.
ARG BUILD_BASE=debian:bookworm-slim

FROM ${BUILD_BASE} AS build

# Same two steps as python.Dockerfile's healthcheck stage: one cached layer for both.
ARG BUILD_PACKAGES="gcc make libc6-dev libsodium-dev pkg-config"
COPY docker/ensure-packages.sh /usr/local/sbin/
RUN set -eux; ensure-packages.sh $BUILD_PACKAGES

WORKDIR /src
COPY c/ c/
COPY docker/healthcheck.c docker/

# Build, strip, refuse anything dynamically linked (it could not run on
# scratch), and lay out the runtime filesystem in /rootfs.
RUN set -eux; \
    make -C c STATIC=1; \
    gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror -Wshadow -Wconversion -static \
        -o docker/healthcheck docker/healthcheck.c; \
    mkdir -p /rootfs/etc /rootfs/usr/local/bin; \
    install -m 0755 c/server c/client /rootfs/; \
    install -m 0755 docker/healthcheck /rootfs/usr/local/bin/; \
    strip --strip-all /rootfs/server /rootfs/client /rootfs/usr/local/bin/healthcheck; \
    for bin in /rootfs/server /rootfs/client /rootfs/usr/local/bin/healthcheck; do \
        if readelf -d "$bin" | grep -q NEEDED; then echo "$bin is not static" >&2; exit 1; fi; \
    done; \
    echo 'securemsg:x:10001:10001:securemsg:/:/nonexistent' > /rootfs/etc/passwd; \
    echo 'securemsg:x:10001:' > /rootfs/etc/group

FROM scratch

LABEL org.opencontainers.image.title="securemsg-c" \
      org.opencontainers.image.description="securemsg C server and client (static, FROM scratch)" \
      securemsg.component="c"

COPY --from=build /rootfs/ /

USER 10001:10001
EXPOSE 5000

# No shell here: an exec-form check that looks for the listening socket in
# /proc (it does not connect, so it adds nothing to the server's log).
HEALTHCHECK --interval=2s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "5000"]

# The client is `/client HOST PORT [MESSAGE]` (set by compose / docker run).
CMD ["/server", "5000"]
