// Package logev names every event hupd logs: each log/slog message is a
// constant here, used by the code that logs it and by the tests that wait
// for it or count it, so that a message renamed in the code renames the
// tests' waits with it (a wait for an absence cannot go on passing for a
// message that no longer exists).
//
// Invariants:
//   - Every log call in hupd's code passes one of these constants as its
//     message, never a literal (TestNoLiteralMessages scans the module),
//     and every constant is logged somewhere (TestEveryEventLogged).
//   - Messages are constant, lowercase, without the values, which go in
//     key/value pairs; they never change once released (operators' scripts
//     and alerts match them byte for byte): a new wording is a new constant.
//   - Each message names one event: no two constants share a message.
//
// One leaf package for all of them, one file per subsystem that logs
// (supervisor.go, run.go, legacy.go, control.go, health.go, demo.go),
// rather than constants in each package: the tests that wait for events
// (integration/, the benchmark) read events of every subsystem and would
// otherwise import all of them, and logev imports nothing, so leaf
// packages such as legacy, control or health gain no edge to another
// hupd package by naming their events. Log keys stay with the supervisor
// (supervisor.Key*).
package logev
