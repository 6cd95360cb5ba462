# The hollow-node image for users who build with Docker. `kubemark image push` builds the same
# image without a daemon (the hollow-node binary plus the shared libraries it links, no base image).
#   docker build -t registry.example.com/hollow-node:v0.1.0 . && docker push registry.example.com/hollow-node:v0.1.0
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# -p alone: kubemark-hollow's features only, so no SSH, download or image-push code is compiled in.
RUN cargo build --release --locked -p kubemark-hollow --bin hollow-node

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/hollow-node /usr/local/bin/hollow-node
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/hollow-node"]
