# syntax=docker/dockerfile:1
# The gateway (`event-processor`) for the docker-compose stack: built with the embedded
# SQLite default plus the PostgreSQL and Kafka backends, run from a small Debian image.

FROM rust:1-bookworm AS build
# librdkafka is built from source by rdkafka-sys (bundled, no system library): it needs a C
# toolchain, make and perl, which the rust image has.
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p event-processor --features sqlite,postgres,kafka \
    && cp target/release/event-processor /usr/local/bin/event-processor

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home event-processor
COPY --from=build /usr/local/bin/event-processor /usr/local/bin/event-processor
USER event-processor
WORKDIR /data
EXPOSE 5000
ENV RUST_LOG=info
# Ready when the API answers a listing (which reads the schema store).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5000 && printf 'GET /healthcheck/list_events HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["event-processor"]
CMD ["serve", "--addr", "0.0.0.0:5000"]
