# tierpix: one static-ish binary over Debian's libvips, the image of docker-compose.yml's
# replicas (which set the rest of the configuration). Not built on the development machines
# (they run no Docker engine); see the README.
FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libvips-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -o /out/tierpix ./cmd/tierpix

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libvips42 ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/tierpix --create-home tierpix
COPY --from=build /out/tierpix /usr/local/bin/tierpix
USER tierpix
ENV TIERPIX_ADDR=0.0.0.0:8080 TIERPIX_DATA_DIR=/var/lib/tierpix
VOLUME /var/lib/tierpix
EXPOSE 8080
ENTRYPOINT ["tierpix"]
CMD ["serve"]
