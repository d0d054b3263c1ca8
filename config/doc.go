// Package config reads hupd.toml and command-line overrides into one
// Config, and resolves it into what the supervisor and socketact need.
//
// Every value is checked before anything is started: a Config either
// resolves completely or yields an *Error naming where the value came from
// (file:line or the flag), the field, the value and what is wrong.
package config
