# syntax=docker/dockerfile:1
# syncd, fred's daemon: LiveKit webhooks -> durable spool -> Postgres.
#
#   docker build -t fred-syncd .
#   docker run -d --name syncd --env-file .env -p 8787:8787 -v syncd-spool:/var/lib/syncd fred-syncd
#
# The spool (/var/lib/syncd) must be a persistent volume: a 2xx to LiveKit means the event is
# fsync'd there, and an event on a container's throw-away layer is lost with the container.
# Checked without a container engine by .ci/deploy-check.sh (paths, binary name, variables).

# --- build: this workspace's toolchain (rust-version 1.95, Cargo.lock honoured) ------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The workspace manifest names both members, so both manifests must be present; only syncd is built
# (the pgrx extension needs Postgres headers and is never compiled here).
COPY Cargo.toml Cargo.lock ./
COPY extension ./extension
COPY syncd ./syncd
# Plain RUN, no BuildKit cache mounts, so every builder (Fly's, Render's, docker build) accepts it.
RUN cargo build --release -p syncd --locked \
 && install -D -m 0755 target/release/syncd /out/syncd

# --- runtime: small, CA certificates for TLS to Postgres, LiveKit and S3 ----------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 syncd \
 && useradd --system --uid 10001 --gid syncd --home-dir /var/lib/syncd --no-create-home \
            --shell /usr/sbin/nologin syncd \
 && install -d -o syncd -g syncd -m 0700 /var/lib/syncd
COPY --from=build /out/syncd /usr/local/bin/syncd
COPY deploy/healthcheck.sh /usr/local/bin/syncd-healthcheck

# A container must listen on every interface (syncd's own default is 127.0.0.1:8787).
ENV SYNCD_LISTEN=0.0.0.0:8787 \
    SYNCD_SPOOL_DIR=/var/lib/syncd \
    SYNCD_LOG_FORMAT=json \
    RUST_LOG=info

USER syncd:syncd
WORKDIR /var/lib/syncd
VOLUME ["/var/lib/syncd"]
EXPOSE 8787
# /healthz: the process is alive and serving. Readiness (spool writable, Postgres reachable,
# fred installed) is /readyz: point an orchestrator's readiness probe there.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/syncd-healthcheck", "/healthz"]
# syncd drains in-flight requests and its current batch on SIGTERM (SYNCD_SHUTDOWN_GRACE, 10 s
# by default); give it longer than that before a SIGKILL (docker stop -t 20, stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/syncd"]
CMD ["serve"]
