# syntax=docker/dockerfile:1
# palaver in a container: build the release binary, then copy it alone into a small
# distroless image (glibc, no shell, no package manager) that runs as a non-root user.
#
#   docker build -t palaver .
#   docker run --rm -p 5005:5005 palaver                        # the example bot
#   docker run --rm -p 5005:5005 -v "$PWD/mybot:/bot:ro" palaver run /bot --enable-api
#
# Every flag of `palaver run` can be set as a PALAVER_* environment variable instead.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so that editing palaver's own code reuses their build layer.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src bench \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > bench/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin palaver \
    && rm -rf src bench
COPY . .
# Make sure cargo sees the real sources as newer than the placeholder build.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin palaver \
    && install -D -s target/release/palaver /out/palaver \
    && mkdir -p /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/palaver /usr/local/bin/palaver
COPY examples/handoff_bot /bot
# Conversations (palaver.db, SQLite) are written to the working directory.
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
VOLUME ["/data"]
USER 65532:65532
ENV PALAVER_PORT=5005 \
    PALAVER_INTERFACE=0.0.0.0 \
    PALAVER_LOG_FORMAT=json
EXPOSE 5005
HEALTHCHECK --interval=15s --timeout=6s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/palaver", "health"]
ENTRYPOINT ["/usr/local/bin/palaver"]
CMD ["run", "/bot"]
