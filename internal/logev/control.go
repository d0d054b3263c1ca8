package logev

// Events of package control: the control socket's server.
const (
	// The control socket's file could not be removed.
	ControlRemoveFailed = "cannot remove control socket"
	// Accepting on the control socket failed (retried after a delay).
	ControlAcceptFailed = "control socket accept failed"
	// A control connection's credentials could not be read.
	ControlNoCredentials = "control connection without credentials"
	// A control connection from a user not allowed was refused.
	ControlRefused = "control connection refused"
	// A control request could not be decoded.
	ControlBadRequest = "bad control request"
)
