// A single-threaded Node.js HTTP server for hupd, with nothing but node
// itself (no npm packages). See README.md in this directory.
//
// It serves the listening socket hupd hands it on fd 3 (LISTEN_FDS, the
// systemd way), answers every request with its PID and its instance index
// (HUPD_INSTANCE, 0..HUPD_INSTANCES-1 under `hupd run --instances N`),
// says READY=1 through systemd-notify when that program is installed, and
// on SIGTERM drains: it stops accepting (the socket lives on in hupd and
// the other instances), answers each further request with
// "Connection: close", closes the keep-alive connections still idle after
// a second, and exits once every connection is closed.
"use strict";

const http = require("http");
const net = require("net");
const { execFileSync } = require("child_process");

// hupd (like systemd) names the process the sockets are meant for: a
// LISTEN_PID that is not ours means fd 3 is not a socket passed to us.
if (process.env.LISTEN_PID !== String(process.pid) || Number(process.env.LISTEN_FDS) < 1) {
  console.error(`node server: no socket passed (LISTEN_PID=${process.env.LISTEN_PID}, pid ${process.pid}, LISTEN_FDS=${process.env.LISTEN_FDS}): run me under hupd or systemd`);
  process.exit(2);
}
const instance = process.env.HUPD_INSTANCE ?? "0";
// The longest time to finish requests in flight on SIGTERM, and how long a
// client on an idle keep-alive connection has to send one more request
// (answered with "Connection: close") before the connection is closed.
const grace = Number(process.env.DRAIN_GRACE_MS ?? 30000);
const idleGrace = 1000;

let draining = false;
const server = http.createServer((req, res) => {
  if (draining) {
    res.setHeader("Connection", "close");
  }
  res.setHeader("Content-Type", "text/plain");
  res.end(`pid ${process.pid}\ninstance ${instance}\n`);
});

server.listen({ fd: 3 }, () => {
  // READY=1 on $NOTIFY_SOCKET. node cannot send a unix datagram itself;
  // systemd-notify sends it on our behalf (with our PID as the sender,
  // when run as root). Without it, hupd's default readiness (auto) judges
  // the instance ready after it has been alive two seconds.
  if (process.env.NOTIFY_SOCKET) {
    try {
      execFileSync("systemd-notify", ["--ready"], { stdio: "inherit" });
    } catch (err) {
      console.error(`node server: systemd-notify: ${err.message}`);
    }
  }
  console.log(`node server: pid ${process.pid} instance ${instance} serving fd 3`);
});

function drain(signal) {
  if (draining) {
    return;
  }
  draining = true;
  // net.Server's close, not http.Server's: it stops accepting without
  // closing idle keep-alive connections at once (http.Server.close does
  // since Node 19, racing a client that sends on one at that moment). Its
  // callback runs once every connection is closed.
  net.Server.prototype.close.call(server, () => {
    console.log(`node server: pid ${process.pid} drained (${signal})`);
    process.exit(0);
  });
  setTimeout(() => server.closeIdleConnections(), idleGrace).unref();
  setTimeout(() => {
    console.log(`node server: pid ${process.pid}: connections still open after ${grace} ms`);
    process.exit(1);
  }, grace).unref();
}
process.on("SIGTERM", drain);
process.on("SIGINT", drain);
