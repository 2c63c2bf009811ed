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
ENTRYPOINT ["/usr/local/bin/redoubt"]
CMD ["--config", "/data/redoubt.yaml"]
