package logev

// Events of package internal/demo: the program hupd demo runs.
const (
	// The demo program serves its sockets.
	DemoServing = "demo: serving"
	// The demo program read its configuration again.
	DemoConfigReloaded = "demo: config reloaded"
	// The demo program could not read its configuration.
	DemoConfigError = "demo: reading config"
	// The demo program's drain timed out: connections are closed.
	DemoDrainTimeout = "demo: drain timeout; closing connections in flight"
)
