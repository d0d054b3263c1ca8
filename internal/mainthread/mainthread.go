// Package mainthread runs functions on the process's main OS thread.
//
// hupd starts every child from one thread, because a child's parent-death
// signal (PR_SET_PDEATHSIG) follows the thread that forked it, not the
// process: if that thread ended, every child would be killed. That thread
// must also be the one that re-executes hupd for an in-place upgrade, as
// execve ends all the others; the exec'ing thread becomes the new image's
// main thread, whose children are then the adopted generations. So the
// forking thread is the main thread, in every image: main locks the main
// goroutine to it (init) and serves calls on it (Serve) while the rest of
// hupd runs on other goroutines.
package mainthread

import (
	"runtime"
	"sync/atomic"
)

func init() {
	// The main goroutine starts on the main thread: keep it there.
	runtime.LockOSThread()
}

var (
	calls   = make(chan func())
	serving atomic.Bool
)

// Serve runs main on a new goroutine and the functions given to Do on the
// calling goroutine, which must be the main goroutine, until main returns;
// then it returns main's result.
func Serve(main func() int) int {
	serving.Store(true)
	done := make(chan int, 1)
	go func() { done <- main() }()
	for {
		select {
		case f := <-calls:
			f()
		case code := <-done:
			serving.Store(false)
			return code
		}
	}
}

// Serving reports whether Serve runs, so that Do reaches the main thread.
func Serving() bool { return serving.Load() }

// Do runs f on the main thread and waits for it to return. Only while
// Serving.
func Do(f func()) {
	done := make(chan struct{})
	calls <- func() { defer close(done); f() }
	<-done
}
