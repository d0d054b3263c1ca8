package supervisor

// settling is the generation kept running after a swap (StateSettling),
// nil if none.
func (s *Supervisor) settling() *generation {
	for _, g := range s.gens {
		if g.state == StateSettling {
			return g
		}
	}
	return nil
}

// rollback serves a Rollback request on Run's goroutine.
func (s *Supervisor) rollback() ReloadResult {
	switch {
	case s.stopping:
		return failed(StrategyRollback, "hupd is stopping")
	case s.tx != nil:
		return failed(StrategyRollback, "a reload is in progress")
	case s.settling() == nil:
		return failed(StrategyRollback, "no generation is settling: nothing to roll back to")
	}
	return failed(StrategyRollback, "no generation is settling: nothing to roll back to")
}
