# syntax=docker/dockerfile:1
#
# Verdict as a Lambda container image (PackageType: Image).
#
#   docker build -t verdict .                      # needs Docker
#   docker run -p 9000:8080 verdict                # Runtime Interface Emulator
#   curl -XPOST localhost:9000/2015-03-31/functions/function/invocations -d @examples/apigw-event.json
#
# The build stage runs the same build CI proves (`cargo build --release
# --locked`) on Amazon Linux 2023, so the binary links against the glibc of
# the Lambda base image it is copied into. The image carries config.yaml and
# policies/ at $LAMBDA_TASK_ROOT (/var/task), so it answers from the baked-in
# policies with no AWS access; set VERDICT_CONFIG (e.g. to a blob config) to
# read policies from S3 instead.

ARG RUST_VERSION=1.95.0

FROM public.ecr.aws/amazonlinux/amazonlinux:2023 AS build
ARG RUST_VERSION
# Reported by GET /api/server_info (see build.rs); "unknown" when not given.
ARG VERDICT_COMMIT=""
ARG VERDICT_BUILD_DATE=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# gcc links the binary and builds its C parts (the TLS stack, mimalloc); the toolchain
# comes from rustup, pinned to RUST_VERSION.
# Package versions follow the AL2023 release the base image pins.
# hadolint ignore=DL3041
RUN dnf install -y gcc gcc-c++ make tar gzip \
    && dnf clean all \
    && curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
       | sh -s -- -y --profile minimal --default-toolchain "${RUST_VERSION}"
ENV PATH=/root/.cargo/bin:${PATH}
WORKDIR /src
# The whole crate (see .dockerignore), so every target Cargo.toml names exists.
COPY . .
RUN cargo build --release --locked --bin bootstrap

FROM public.ecr.aws/lambda/provided:al2023
COPY --from=build /src/target/release/bootstrap ${LAMBDA_RUNTIME_DIR}/bootstrap
COPY config.yaml ${LAMBDA_TASK_ROOT}/config.yaml
COPY policies ${LAMBDA_TASK_ROOT}/policies
WORKDIR ${LAMBDA_TASK_ROOT}
# The provided runtime starts ${LAMBDA_RUNTIME_DIR}/bootstrap; the handler
# name is not used by Verdict.
CMD ["bootstrap"]
