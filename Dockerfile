# Debian's nginx with the module, the example configuration, the token CLI and the mock WCS.
#
#   docker build -t wcs-token-auth .                 the image
#   docker run --rm -p 8080:8080 -p 8081:8081 wcs-token-auth   the demo (page on port 8080)
#   docker build --target test .                     scripts/test.sh inside the build image
#
# Every step is a script that CI runs natively (scripts/install.sh, scripts/demo.sh,
# scripts/test.sh), so the image cannot drift from what is tested. No Docker engine runs where
# this project is developed: this file itself is not built there.

# Debian bookworm with a current Rust toolchain (Debian's own cargo is too old for ngx).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Builds against Debian's nginx-dev tree and stages a Debian-style install into /stage.
RUN bash scripts/install.sh /stage \
    && mkdir -p /stage/opt/wcs-token-auth \
    && cp -a scripts demo /stage/opt/wcs-token-auth/ \
    && dpkg-query -W -f='${Version}' nginx >/stage/opt/wcs-token-auth/nginx-version

FROM build AS test
RUN bash scripts/test.sh

FROM debian:bookworm-slim AS runtime
# The very nginx build the module was compiled against: nginx refuses any other.
COPY --from=build /stage/opt/wcs-token-auth/nginx-version /tmp/nginx-version
RUN apt-get update \
    && apt-get install -y --no-install-recommends "nginx=$(cat /tmp/nginx-version)" ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /stage/ /
# Debian's nginx.conf loads modules-enabled/*.conf: fail the build if the module is refused.
RUN nginx -t
WORKDIR /opt/wcs-token-auth
EXPOSE 8080 8081
# The demo from the installed files: Debian's nginx and the module as installed, the mock WCS
# behind it, a fresh token, the browser page. Mount your own nginx.conf and run
# `nginx -g 'daemon off;'` instead for real use.
ENV DEMO_PREBUILT=1 DEMO_LISTEN=0.0.0.0 DEMO_PORT=8080
CMD ["bash", "scripts/demo.sh", "run"]
