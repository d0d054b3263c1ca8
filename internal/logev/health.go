package logev

// Events of package health: the health and metrics endpoint.
const (
	// Accepting on the health endpoint failed (retried after a delay).
	HealthAcceptFailed = "health endpoint: accept failed"
	// A health request was refused.
	HealthBadRequest = "health endpoint: bad request"
	// A health connection sent no request.
	HealthNoRequest = "health endpoint: no request"
	// A health answer could not be sent.
	HealthAnswerNotSent = "health endpoint: answer not sent"
)
