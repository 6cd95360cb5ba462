# The hollow-node image for users who build with Docker. `kubemark image push` builds the same
# image without a daemon (the binary plus the shared libraries it links, no base image).
#   docker build -t registry.example.com/kubemark:v0.1.0 . && docker push registry.example.com/kubemark:v0.1.0
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p kubemark-cli --bin kubemark

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kubemark /usr/local/bin/kubemark
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/kubemark"]
