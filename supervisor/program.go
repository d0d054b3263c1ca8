package supervisor

// KeyProgram is the log key of a program's name when hupd runs several
// (internal/run's fleet): every record about a program carries it.
const KeyProgram = "program"
