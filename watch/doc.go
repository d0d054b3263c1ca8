// Package watch tells when the content of a set of files really changes,
// however it was changed: written in place, replaced by a rename (editors,
// sed -i), deleted and created again, re-pointed through a symlink, or
// swapped in one rename of a Kubernetes ConfigMap's "..data" link.
//
// The model: a Group is a list of paths (files, directories, globs). The
// watcher never watches a bare file. It watches the directories that
// decide what a path means: the parent of every path component, every
// symlink on the way, the nearest existing ancestor of a path that does not
// exist yet, and every directory of a watched tree. Any event there only
// schedules a rescan of the group after a quiet period (the debounce); the
// rescan walks the paths again, re-arms the watches the walk now needs and
// hashes the bytes of every file it found. A group changes when, and only
// when, that hash changes: a touch, a chmod, a rewrite with equal content
// or a burst of events that ends where it began changes nothing. A file
// written in place (truncated, then written) while a rescan is under way
// may be reported twice, truncated first: readers see the truncation
// before the kernel queues its event or moves the ctime, so nothing tells
// it from an empty file. A file replaced by a rename is reported once.
//
// Invariants: one goroutine owns all state and is the only one that sends
// on Events; every event in a watched directory is followed by a rescan of
// the groups that depend on it no later than the debounce (or, under a
// constant stream of events, MaxWait) after it; a queue overflow rescans
// every group and re-arms every watch; a group with a PollInterval uses no
// inotify watch at all.
package watch
