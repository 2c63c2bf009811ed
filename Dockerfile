# One static binary on distroless, running as non-root with its data in /data.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/redoubt ./cmd/redoubt && mkdir /out/data

FROM gcr.io/distroless/static-debian12:nonroot
# The release: the image's tag, and the Helm chart's appVersion (a test
# keeps both equal to the binary's config.Version).
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="Redoubt" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/redoubt-systems/redoubt" \
      org.opencontainers.image.description="Single-tenant Matrix homeserver: one static binary, one SQLite file"
COPY --from=build /out/redoubt /usr/local/bin/redoubt
# Owned by the image's non-root user (65532), or the server could not
# create its database in a fresh volume.
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME /data
EXPOSE 8008
# The Helm chart (deploy/helm/redoubt) runs it with --config
# /etc/redoubt/config/redoubt.yaml from a Secret and /data on a volume.
# Without it: /data/redoubt.yaml sets listen (e.g. 0.0.0.0:8008) with tls, or plain_http
# behind a TLS-terminating proxy; database: /data/redoubt.db.
HEALTHCHECK --interval=30s --timeout=5s CMD ["/usr/local/bin/redoubt", "health", "--config", "/data/redoubt.yaml"]
ENTRYPOINT ["/usr/local/bin/redoubt"]
CMD ["--config", "/data/redoubt.yaml"]
