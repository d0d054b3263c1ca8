#!/bin/sh
# nginx's readiness for hupd (hupd.toml, program "web": ready_command).
# hupd runs this every 250ms until it exits 0, with HUPD_PID set to the PID
# of the nginx master it started; sh runs it, so it needs no exec bit.
#
# An nginx master starts its workers only once it has read nginx.conf and
# holds every listening socket: the one hupd hands over, and any it binds
# itself (a bind that fails is retried for about 2.5s, then the master
# exits without starting any). So the new master is ready once a process
# of its own runs. An answer on 127.0.0.1:8080 would prove nothing: the
# old master's workers accept on the same socket. (nginx's pid file would
# not do either: the old master removes it as it exits, whichever master
# it names.)
[ -n "$HUPD_PID" ] || exit 2
for stat in /proc/[0-9]*/stat; do
	# pid (comm) state ppid …: nginx's comm has no space.
	read -r _ _ _ ppid _ 2>/dev/null <"$stat" || continue
	[ "$ppid" = "$HUPD_PID" ] && exit 0
done
exit 1
