# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are compiled in their own cached layer, the runtime is a slim
# Debian image with CA certificates, a non-root user and the binary alone.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# 1. Dependency layer: build a dummy crate with the real manifests so that `cargo build` of the
#    dependencies is cached until Cargo.toml / Cargo.lock change. The dummy crate's own
#    fingerprints and artefacts (lib and bin) go too: COPY keeps the sources' older mtimes, so
#    cargo would otherwise take the dummy lib for fresh and the real build would not compile.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/.fingerprint/ado-clickup-sync-* \
      target/release/deps/ado_clickup_sync-* target/release/deps/libado_clickup_sync-* \
      target/release/ado-clickup-sync*
# 2. The real build: the same command the tests' release build uses.
COPY schema.sql ./
COPY src ./src
RUN cargo build --release --locked

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin sync
WORKDIR /app
COPY --from=build /src/target/release/ado-clickup-sync /usr/local/bin/ado-clickup-sync
COPY config/default.toml /app/config/default.toml
RUN mkdir -p /app/data && chown -R sync:sync /app
USER sync
VOLUME ["/app/data"]
ENV DATABASE_URL=/app/data/sync.db
EXPOSE 8080
# The slim image has no curl: the binary checks its own readiness endpoint.
HEALTHCHECK --interval=30s --timeout=10s --retries=3 \
  CMD ["ado-clickup-sync", "health"]
ENTRYPOINT ["ado-clickup-sync"]
CMD ["run"]
