# securemsg/capture:latest - tcpdump and nothing else (FROM scratch plus the
# files of Debian's tcpdump and its libraries, docker/rootfs.sh; ~25 MB), for
# compose.yaml's `capture` profile and the demo's wire capture.
# Build context: the repository root (see compose.yaml and .dockerignore).
#
# RUNTIME_BASE: by default the official Debian image (a registry and its apt
# mirror are needed); docker/lab.sh passes securemsg/base-runtime:bookworm
# (docker/base-image.sh), which has tcpdump, so the build uses no network.
ARG RUNTIME_BASE=debian:bookworm-slim

FROM ${RUNTIME_BASE} AS runtime
ARG CAPTURE_PACKAGES="tcpdump"
COPY docker/ensure-packages.sh docker/rootfs.sh /usr/local/sbin/
# tcpdump opens the capture as root, then drops to its own user: both accounts.
RUN set -eux; \
    ensure-packages.sh $CAPTURE_PACKAGES; \
    rootfs.sh /rootfs $CAPTURE_PACKAGES dash; \
    mkdir -p /rootfs/etc; \
    printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' \
        'tcpdump:x:101:101:tcpdump:/nonexistent:/usr/sbin/nologin' > /rootfs/etc/passwd; \
    printf '%s\n' 'root:x:0:' 'tcpdump:x:101:' > /rootfs/etc/group

FROM scratch

LABEL org.opencontainers.image.title="securemsg-capture" \
      org.opencontainers.image.description="tcpdump for the securemsg lab's capture profile and demo" \
      securemsg.component="capture"

COPY --from=runtime /rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

RUN ["tcpdump", "--version"]

# Root, because opening a packet socket needs NET_RAW; tcpdump then drops to its
# user "tcpdump" (Debian's build default). compose.yaml keeps only NET_RAW,
# SETUID and SETGID.
CMD ["tcpdump", "--help"]
