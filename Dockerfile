# syntax=docker/dockerfile:1
# One image for every service; the container's command names the one to run:
#
#   docker build -t swift-user-events .
#   docker run --rm -e RABBITMQ_URL=... -e USER_DB_URL=... -p 8000:8000 swift-user-events user-service
#
# Stage `build`: the Swift 6.3 toolchain (the one the tests run on) on Debian 12 builds the shipped
# executables in release mode, with the Swift runtime and Foundation linked in statically. Stage `runtime`:
# Debian 12 slim with only what they load at run time (librabbitmq4, libsqlite3-0), CA certificates (for
# amqps://), time zones, and curl for the health checks on /readyz; the binaries and UserService's resources
# (openapi.json) in /app, run by an unprivileged user. The benchmark (user-events-bench) is a development
# tool that starts its own services: not shipped.
# docker-compose.prod.yml runs this image.

FROM swift:6.3-bookworm AS build
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends librabbitmq-dev libsqlite3-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# Dependencies first: this layer is reused for as long as the manifest does not change.
COPY Package.swift ./
RUN swift package resolve
# The manifest names the test targets' directories too, so they must exist for it to load.
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product user-service \
    && swift build -c release --static-swift-stdlib --product notification-service \
    && swift build -c release --static-swift-stdlib --product order-service \
    && swift build -c release --static-swift-stdlib --product requeue-dead-letters
# Executables and the resource bundles they look for next to themselves.
RUN bin="$(swift build -c release --show-bin-path)" \
    && mkdir /staging \
    && cp "$bin/user-service" "$bin/notification-service" "$bin/order-service" "$bin/requeue-dead-letters" /staging/ \
    && find -L "$bin" -maxdepth 1 -name '*.resources' -exec cp -R {} /staging/ \;

FROM debian:bookworm-slim AS runtime
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends librabbitmq4 libsqlite3-0 ca-certificates tzdata curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin app
COPY --from=build --chown=root:root /staging/ /app/
ENV PATH=/app:$PATH
WORKDIR /app
USER app:app
# The services' default HTTP ports: user API, order service, notification service (admin).
EXPOSE 8000 8001 8002
STOPSIGNAL SIGTERM
CMD ["user-service"]
