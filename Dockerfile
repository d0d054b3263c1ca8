# hupd as the container's PID 1, with the hello demo server as the default
# command. Usage, signals, exit codes and running as root for port 80:
# examples/docker/README.md.
#
#   docker build -t hupd .
#   docker run --rm -p 8080:8080 hupd

# build compiles hupd and hello as static binaries (no libc in the image).
FROM golang:1.26 AS build
WORKDIR /src
# hupd's own module only: the repository's go.work also joins the benchmark
# suite (integration/bench, kept out of the context), whose plotting library
# hupd does not need.
ENV GOWORK=off
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION is what `hupd version` prints (default: from the module).
ARG VERSION=""
ENV CGO_ENABLED=0
RUN go build -tags urfave_cli_no_docs -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/hupd . \
 && go build -trimpath -ldflags "-s -w" -o /out/hello ./examples/hello

# distroless/static rather than scratch: it has the /etc/passwd and
# /etc/group that --user/--group names are looked up in (root, nobody
# 65534, nonroot 65532), and a world-writable /tmp, where hupd running as a
# non-root user without XDG_RUNTIME_DIR puts its control socket
# (/tmp/hupd-UID/) and its notify sockets. scratch would need all three
# made by hand. Nothing else is in it: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hupd /out/hello /usr/local/bin/
# Non-root by default (the image's nonroot user). Run with --user 0 to bind
# ports below 1024 where the runtime does not allow it to others, and give
# the child an unprivileged user with hupd's own --user.
USER 65532:65532
EXPOSE 8080
# docker stop sends this to hupd: a graceful stop of the child, SIGKILL to
# its process group after hupd's --stop-timeout (30s by default). Docker
# kills everything after its own 10s: run with --stop-timeout 35.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/hupd"]
CMD ["run", "--listen", "http=:8080", "--reload", "swap", "--", "/usr/local/bin/hello"]
