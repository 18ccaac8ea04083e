# The module for Debian's packaged nginx, in Debian bookworm images only:
#
#   build    Debian's Rust (rustc-web) and nginx-dev: the module and the tools, and the .deb
#            (scripts/deb.sh) in /out
#   runtime  Debian's nginx with that .deb installed by apt; runs the demo by default
#   test     the runtime image plus the toolchain: the end-to-end suite against its nginx
#
#   docker build -t wcs-token-auth .                      the runtime image (podman build alike)
#   docker run --rm -p 8080:8080 -p 8081:8081 wcs-token-auth     the demo: http://127.0.0.1:8080/
#   docker build --target test -t wcs-token-auth:test . && docker run --rm wcs-token-auth:test
#
# scripts/container.sh builds every stage with podman and runs the container tests (CI does).
# Crates come from target/container/vendor when that directory is in the build context
# (container.sh runs `cargo vendor` there when the host has cargo), from crates.io otherwise.

FROM debian:bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends rustc-web cargo-web clang libclang-dev \
        libpcre2-dev libssl-dev zlib1g-dev make pkg-config nginx-dev dpkg-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# The dependencies first, from the manifests alone and empty crates, so that this layer
# survives changes to the sources; each cargo command as the steps below run it (the test
# stage's too), since another package or feature selection builds them anew.
COPY Cargo.toml Cargo.lock build.rs ./
COPY core/Cargo.toml core/
COPY testkit/mock-wcs/Cargo.toml testkit/mock-wcs/
COPY wcs-token/Cargo.toml wcs-token/
COPY bench/Cargo.toml bench/
COPY scripts/common.sh scripts/build.sh scripts/
# The vendored crates if the context has them (a glob that matches nothing copies nothing),
# with the cargo configuration that uses them.
COPY packaging/cargo-vendor.toml target/containe[r]/vendo[r] target/container/vendor/
RUN mkdir -p "$HOME/.cargo" \
    && if find target/container/vendor -mindepth 1 -maxdepth 1 -type d | grep -q .; then \
        mv target/container/vendor/cargo-vendor.toml "$HOME/.cargo/config.toml"; \
    else \
        rm -r target/container; \
    fi \
    && for crate in . core testkit/mock-wcs wcs-token bench; do \
        mkdir -p "$crate/src" && : >"$crate/src/lib.rs"; \
    done \
    && echo 'fn main() {}' >wcs-token/src/main.rs \
    && mkdir -p tests/e2e && echo 'fn main() {}' >tests/e2e/main.rs \
    && bash scripts/build.sh --debian \
    && cargo build --release --locked -p wcs-token \
    && cargo build --release --locked -p mock-wcs \
    && CARGO_TARGET_DIR=/src/target/external NGINX_BUILD_DIR=/src/target/debian-nginx/objs \
        cargo test --release --locked --no-default-features --features export-modules --test e2e --no-run \
    && rm -rf src core/src testkit/mock-wcs/src wcs-token/src bench/src tests target/dist

COPY . .
# The sources are older than the empty crates' builds: make cargo see them as changed.
RUN find . -path ./target -prune -o -name '*.rs' -exec touch {} + \
    && bash scripts/deb.sh /out \
    && cargo build --release --locked -p mock-wcs \
    && install -D -t /out/bin target/release/mock-wcs target/release/wcs-ws-probe target/release/wcs-token

FROM debian:bookworm AS runtime
ARG DEBIAN_FRONTEND=noninteractive
COPY --from=build /out/ /tmp/wcs/
# apt installs the .deb and, through its nginx-abi dependency, the nginx it was built for.
RUN apt-get update \
    && apt-get install -y --no-install-recommends /tmp/wcs/libnginx-mod-http-wcs-token-auth_*.deb \
    && rm -rf /var/lib/apt/lists/* \
    && install -D -t /opt/wcs-token-auth/bin /tmp/wcs/bin/mock-wcs /tmp/wcs/bin/wcs-ws-probe \
    && ln -s /usr/bin/wcs-token /opt/wcs-token-auth/bin/wcs-token \
    && rm -rf /tmp/wcs
# The demo (scripts/demo.sh with what is installed) and the example configuration.
COPY scripts/common.sh scripts/demo.sh /opt/wcs-token-auth/scripts/
COPY demo/www/ /opt/wcs-token-auth/demo/www/
COPY nginx-conf/nginx.conf /opt/wcs-token-auth/nginx.conf
# Debian's nginx.conf loads modules-enabled/*.conf, where the package put the module.
RUN nginx -t
WORKDIR /opt/wcs-token-auth
EXPOSE 8080 8081
# For real use, mount an nginx.conf (the example above is one) and the token directory, and
# run nginx instead: docker run -v "$PWD/nginx.conf:/etc/nginx/nginx.conf:ro"
#   -v /var/lib/nginx/tokens:/var/lib/nginx/tokens wcs-token-auth nginx -g 'daemon off;'
ENV DEMO_PREBUILT=1 DEMO_BIN=/opt/wcs-token-auth/bin DEMO_LISTEN=0.0.0.0 DEMO_PORT=8080
CMD ["bash", "scripts/demo.sh", "run"]

FROM runtime AS test
ARG DEBIAN_FRONTEND=noninteractive
# The build stage's toolchain; nginx-dev pinned to the runtime's nginx, which it must not move;
# the tools the suite runs (curl as an HTTP/2 client, strace, ss, ps).
RUN apt-get update \
    && apt-get install -y --no-install-recommends rustc-web cargo-web clang libclang-dev \
        libpcre2-dev libssl-dev zlib1g-dev make pkg-config curl strace iproute2 procps \
        "nginx-dev=$(dpkg-query -W -f='${Version}' nginx)" \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /root/.cargo/ /root/.cargo/
COPY --from=build /src/ /src/
WORKDIR /src
# The suite runs the runtime's nginx and the module and wcs-token that the .deb installed.
ENV CARGO_TARGET_DIR=/src/target/external NGINX_BUILD_DIR=/src/target/debian-nginx/objs \
    WCS_NGINX=/usr/sbin/nginx WCS_MODULE=/usr/lib/nginx/modules/ngx_http_wcs_token_auth_module.so \
    WCS_TOKEN=/usr/bin/wcs-token
RUN cargo test --release --locked --no-default-features --features export-modules --test e2e --no-run
CMD ["cargo", "test", "--release", "--locked", "--no-default-features", "--features", "export-modules", "--test", "e2e"]

# Without --target: the runtime image.
FROM runtime
