# syntax=docker/dockerfile:1
#
# Reproducible build of veil-server; the binary has the same sha256 as
# `veil-repro build` run from the same commit (same toolchain, flags and target;
# checked by reproducible-build/tests/repro/dockerfile.rs, which compares this file
# with the command `veil-repro build` runs). Build and extract the binary:
#
#   docker build --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" \
#     --target artifact --output type=local,dest=out .
#   sha256sum out/veil-server
#
# Base images are pinned by digest (multi-platform index digests). They were
# taken from public Dockerfiles that pin the same tags, not pulled here: no
# container engine was available when this file was written. Re-check them with
# `docker buildx imagetools inspect <image>` before a release.

# The toolchain image tag equals rust-toolchain.toml's channel.
FROM rust:1.95.0-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082 AS builder

# The image's toolchain is the pinned one; never let rustup fetch another.
ENV RUSTUP_TOOLCHAIN=1.95.0
WORKDIR /src
COPY . .

# The commit time, as `veil-repro build` takes it from `git log -1 --format=%ct`.
ARG SOURCE_DATE_EPOCH
# hadolint ignore=SC2016
RUN test -n "${SOURCE_DATE_EPOCH}" \
    || { echo 'pass --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"' >&2; exit 1; }

# The environment of veil-repro's BuildPlan, for source /src and CARGO_HOME /usr/local/cargo.
ENV CARGO_INCREMENTAL=0
ENV CARGO_PROFILE_RELEASE_DEBUG=0
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
ENV CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
ENV CARGO_PROFILE_RELEASE_PANIC=unwind
ENV CARGO_TERM_COLOR=never
ENV LC_ALL=C
ENV TZ=UTC
ENV RUSTFLAGS="--remap-path-prefix=/src=/veil --remap-path-prefix=/usr/local/cargo=/cargo --remap-path-prefix=/src/target/veil-repro/build=/target -Ctarget-cpu=x86-64-v3"

RUN cargo build --release --locked --target x86_64-unknown-linux-gnu --package veil-server --bin veil-server --target-dir /src/target/veil-repro/build

# Only the binary, for `--output` (compare its sha256 with `veil-repro build`).
FROM scratch AS artifact
COPY --from=builder /src/target/veil-repro/build/x86_64-unknown-linux-gnu/release/veil-server /veil-server

# Runtime: glibc and CA roots, no shell, no package manager, non-root.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS runtime
COPY --from=builder /src/target/veil-repro/build/x86_64-unknown-linux-gnu/release/veil-server /usr/local/bin/veil-server
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/veil-server"]
