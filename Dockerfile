# Parley server image. NOT built in CI: no Docker engine runs on the project's
# machines (CI runs scripts/test.sh), so this file is checked by review only.
#   docker build -t parley .
#   docker run -p 8000:8000 -v parley-data:/var/lib/parley parley
# Both stages are Debian 12, the system the README and the scripts support.

# --- build: the README's own dependency script, then only the server --------
FROM debian:12-slim AS build
WORKDIR /src
# The script alone first, so the package layer is reused while sources change.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DPARLEY_BENCH=OFF \
 && cmake --build build -j2 --target parley \
 && cmake --install build --prefix /opt/parley

# --- runtime: the shared libraries parley loads, and nothing to build with --
FROM debian:12-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN bash /tmp/install-deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
# bin/parley, share/parley/ (example configs), share/doc/parley/README.md
COPY --from=build /opt/parley /opt/parley
RUN useradd --system --user-group --home-dir /var/lib/parley --shell /usr/sbin/nologin parley \
 && install -d -o parley -g parley -m 0750 /var/lib/parley
# The working directory is where parley reads a .env and keeps SQLite files.
WORKDIR /var/lib/parley
ENV HOST=0.0.0.0 PORT=8000 DATABASE_URL=sqlite:///var/lib/parley/parley.db
EXPOSE 8000
# bash's /dev/tcp: no HTTP client in the image. /health is open even with
# auth.mode = "jwt"; /ready (database answers) is for load balancers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8000} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && IFS= read -r status <&3 && [[ $status == 'HTTP/1.1 200'* ]]"]
USER parley
# SIGTERM (docker stop) drains in-flight requests for up to
# server.shutdown_grace_ms (10 s) and then commits pending writes: give
# `docker stop` more than its default 10 s (docker stop -t 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/parley/bin/parley"]
CMD ["serve"]
