# Build stage: the release binary. Dependencies are compiled in the same layer
# as our code, so any change rebuilds everything (several minutes); splitting
# them into a layer of their own (e.g. with cargo-chef) is not done here.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p todo-api

# Run stage: a small Debian with CA certificates for managed PostgreSQL.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 todo
COPY --from=build /src/target/release/todo-api /usr/local/bin/todo-api
USER todo
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/todo-api"]
