# One static binary on distroless, running as non-root with its data in /data.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/redoubt ./cmd/redoubt

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/redoubt /usr/local/bin/redoubt
VOLUME /data
EXPOSE 8008
# /data/redoubt.yaml sets listen (e.g. 0.0.0.0:8008) with tls, or plain_http
# behind a TLS-terminating proxy; database: /data/redoubt.db.
HEALTHCHECK --interval=30s --timeout=5s CMD ["/usr/local/bin/redoubt", "health", "--config", "/data/redoubt.yaml"]
ENTRYPOINT ["/usr/local/bin/redoubt"]
CMD ["--config", "/data/redoubt.yaml"]
