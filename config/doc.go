// Package config reads hupd.toml and command-line overrides into one
// Config, and resolves it into what the supervisor and socketact need.
//
// Every value is checked before anything is started: a Config either
// resolves completely or yields an *Error naming where the value came from
// (file:line or the flag), the field, the value and what is wrong.
//
// A file is in one of two forms. The single-program form has the
// program's settings (command, [[listen]], [process]…) at the top level;
// Resolve resolves it. The multi-program form has [[program]] tables, each
// with a name and the same settings in tables of its own, and only
// hupd-wide settings (name, control, [health], [systemd], [log]) at the
// top level; ResolveMulti resolves it (and the single form, as one
// program named ""), Resolve refuses it. One function resolves a
// program's settings in both forms (resolveProgram): a [[program]] table
// is resolved through a Config that holds its settings as the top level
// would, its errors naming the table's lines and the program. A file that
// mixes the forms is an error, and so are, across programs, a missing,
// invalid or repeated name, an after that names no program or makes a
// cycle, and a socket address two programs use. ResolvedMulti.Programs are
// in start order: each after the programs it names in after, otherwise in
// the file's order.
//
// Flags is the one list of the command-line flags that set Config fields:
// their names, help texts and the field each sets. The CLI builds its
// flags from it and hands every flag given to Override, which applies it
// over the file's value (a flag always wins) and records the flag as the
// value's source. With [[program]] tables only the Global (hupd-wide)
// flags apply; the others are refused.
package config
