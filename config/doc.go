// Package config reads hupd.toml and command-line overrides into one
// Config, and resolves it into what the supervisor and socketact need.
//
// Every value is checked before anything is started: a Config either
// resolves completely or yields an *Error naming where the value came from
// (file:line or the flag), the field, the value and what is wrong.
//
// Flags is the one list of the command-line flags that set Config fields:
// their names, help texts and the field each sets. The CLI builds its
// flags from it and hands every flag given to Override, which applies it
// over the file's value (a flag always wins) and records the flag as the
// value's source.
package config
