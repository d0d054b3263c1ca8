package watch

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is the quiet period after the last event before a
// group is rescanned.
const DefaultDebounce = 200 * time.Millisecond

// maxWaitFactor times the debounce bounds how long a constant stream of
// events can hold a rescan back.
const maxWaitFactor = 10

// Group is a set of paths watched together; its hash covers all of them.
type Group struct {
	// Paths are absolute: files, directories (watched with everything
	// under them) or globs (filepath.Match syntax in any element).
	Paths []string
	// Debounce is the quiet period before a rescan (DefaultDebounce).
	Debounce time.Duration
	// MaxWait bounds the wait under a constant stream of events
	// (10×Debounce).
	MaxWait time.Duration
	// PollInterval, when positive, rescans the paths that often instead
	// of using inotify: for network filesystems, FUSE and bind mounts,
	// which deliver no events.
	PollInterval time.Duration
	// Baseline is the hash of the content last acted upon, when the
	// caller had one (a watcher replaced by another): if the content
	// differs at start, a change is reported after the debounce.
	Baseline string
}

// Event reports a change of a group's content, or a problem.
type Event struct {
	Group int // index in the groups given to New; -1 for the whole watcher
	// Hash is the group's new hash; "" for a problem.
	Hash string
	// Changed names the files whose content changed, appeared or vanished.
	Changed []string
	// Err is a problem that changes nothing by itself: an unreadable
	// file (its last known content counts), a directory that could not
	// be watched.
	Err error
}

// backend is the part of fsnotify the watcher uses; tests replace it.
type backend interface {
	Add(path string) error
	Remove(path string) error
	Events() <-chan fsnotify.Event
	Errors() <-chan error
	Close() error
}

type fsBackend struct{ w *fsnotify.Watcher }

func (b fsBackend) Add(p string) error            { return b.w.Add(p) }
func (b fsBackend) Remove(p string) error         { return b.w.Remove(p) }
func (b fsBackend) Events() <-chan fsnotify.Event { return b.w.Events }
func (b fsBackend) Errors() <-chan error          { return b.w.Errors }
func (b fsBackend) Close() error                  { return b.w.Close() }
func newFSBackend() (backend, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, limitError(err)
	}
	return fsBackend{w}, nil
}

// Watcher watches groups of paths. Its goroutine owns all its state.
type Watcher struct {
	groups  []*group
	be      backend // nil when every group polls
	dirs    map[string]*dir
	initial []string
	out     chan Event
	done    chan struct{}
	// closeOnce makes Close safe to call twice.
	closeOnce sync.Once
	exited    chan struct{}
}

type group struct {
	Group
	deb     debouncer
	sums    map[string]string
	cache   cache // how each file looked when it was last read
	hash    string
	dirs    map[string]names // what the last scan watches for this group
	sig     string           // polling: metadata signature of the last scan
	pollAt  time.Time
	errText string // the last problem reported, to report each once
}

// dir is one watched directory: which groups care about which names.
type dir struct {
	dev, ino uint64
	groups   map[int]names
	// stale: the watch may be gone or on another inode (an event said the
	// directory was removed, renamed or replaced, or events were lost);
	// the next scan that wants the directory adds it again. The inode
	// number cannot tell: ext4 gives a directory created right after one
	// was deleted the same number, and a directory renamed away and back
	// keeps it while fsnotify drops its watch.
	stale bool
}

// New scans every group, arms the watches and starts watching. An error
// (an inotify limit, most likely) means nothing is left running.
func New(groups []Group) (*Watcher, error) {
	var be backend
	for _, g := range groups {
		if g.PollInterval <= 0 {
			var err error
			if be, err = newFSBackend(); err != nil {
				return nil, err
			}
			break
		}
	}
	return start(groups, be)
}

func start(groups []Group, be backend) (*Watcher, error) {
	w := &Watcher{be: be, dirs: map[string]*dir{}, out: make(chan Event, len(groups)+1),
		done: make(chan struct{}), exited: make(chan struct{})}
	now := time.Now()
	for i, spec := range groups {
		if spec.Debounce <= 0 {
			spec.Debounce = DefaultDebounce
		}
		if spec.MaxWait < spec.Debounce {
			spec.MaxWait = maxWaitFactor * spec.Debounce
		}
		g := &group{Group: spec, deb: debouncer{delay: spec.Debounce, maxWait: spec.MaxWait}}
		w.groups = append(w.groups, g)
		s, err := w.scan(i)
		if err != nil {
			err = fmt.Errorf("watch %s: %w", strings.Join(spec.Paths, " "), err)
			w.close()
			return nil, err
		}
		if g.polls() {
			// Before the content is read: a write during the read
			// changes what the next poll sees.
			g.sig, g.pollAt = s.signature(), now.Add(g.PollInterval)
		}
		g.cache = cache{}
		g.sums, _ = s.sumsCached(nil, g.cache)
		g.hash = total(g.sums)
		if len(s.refused) > 0 {
			w.problem(i, errors.Join(s.refused...)) // the channel has room for one per group
		}
		w.initial = append(w.initial, g.hash)
		if spec.Baseline != "" && spec.Baseline != g.hash {
			// Changed while nobody watched: report it as any change,
			// naming every file (which of them changed is not known).
			g.hash, g.sums = spec.Baseline, nil
			g.deb.touch(now)
		}
	}
	go w.run()
	return w, nil
}

func (g *group) polls() bool { return g.PollInterval > 0 }

// Events delivers changes and problems. It is closed by Close.
func (w *Watcher) Events() <-chan Event { return w.out }

// Hashes returns each group's hash as New found it.
func (w *Watcher) Hashes() []string { return w.initial }

// Close stops the watcher and releases its inotify instance.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() { close(w.done) })
	<-w.exited
	return nil
}

// takePending routes the events already waiting, without blocking.
func (w *Watcher) takePending() {
	if w.be == nil {
		return
	}
	for {
		select {
		case ev, ok := <-w.be.Events():
			if !ok {
				return
			}
			w.route(ev, time.Now())
		default:
			return
		}
	}
}

func (w *Watcher) close() {
	if w.be != nil {
		w.be.Close()
	}
}

func (w *Watcher) run() {
	defer close(w.exited)
	defer close(w.out)
	defer w.close()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w.be != nil {
		events, errs = w.be.Events(), w.be.Errors()
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(w.next())
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			w.route(ev, time.Now())
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost: rescan everything and re-arm
				// every watch; only content that really changed is
				// reported.
				for _, d := range w.dirs {
					d.stale = true
				}
				for _, g := range w.groups {
					if !g.polls() {
						g.deb.touch(time.Now())
					}
				}
				continue
			}
			if !w.send(Event{Group: -1, Err: err}) {
				return
			}
		case <-timer.C:
			if !w.tick(time.Now()) {
				return
			}
		case <-w.done:
			return
		}
	}
}

// next is how long until the earliest deadline of any group.
func (w *Watcher) next() time.Duration {
	var at time.Time
	for _, g := range w.groups {
		for _, t := range []time.Time{g.deb.deadline(), g.pollAt} {
			if !t.IsZero() && (at.IsZero() || t.Before(at)) {
				at = t
			}
		}
	}
	if at.IsZero() {
		return time.Hour
	}
	return max(0, time.Until(at))
}

// route schedules a rescan of the groups an event concerns: the groups
// that watch the directory of its path for its name, and those that watch
// the path itself (an event about a watched directory, such as its
// removal, which also marks its watch stale).
func (w *Watcher) route(ev fsnotify.Event, now time.Time) {
	path := filepath.Clean(ev.Name) // the watch on "/" reports "//name"
	if d := w.dirs[path]; d != nil {
		if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			d.stale = true
		}
		for i := range d.groups {
			w.groups[i].deb.touch(now)
		}
	}
	d := w.dirs[filepath.Dir(path)]
	if d == nil {
		return
	}
	name := filepath.Base(path)
	for i, ns := range d.groups {
		if ns == nil || ns[name] {
			w.groups[i].deb.touch(now)
		}
	}
}

// tick polls the groups that are due and rescans those whose events have
// settled. It returns false once the watcher is closing.
func (w *Watcher) tick(now time.Time) bool {
	for i, g := range w.groups {
		if g.polls() && !now.Before(g.pollAt) {
			g.pollAt = now.Add(g.PollInterval)
			if sig := scanPaths(g.Paths).signature(); sig != g.sig {
				g.sig = sig
				g.deb.touch(now)
			}
		}
		if first, ok := g.deb.take(now); ok && !w.rescan(i, first) {
			return false
		}
	}
	return true
}

// rescan walks group i again and reports a change of its content.
func (w *Watcher) rescan(i int, first time.Time) bool {
	g := w.groups[i]
	s, err := w.scan(i)
	if err != nil && !w.problem(i, err) {
		return false
	}
	sums, errs := s.sumsCached(g.sums, g.cache)
	errs = append(s.refused, errs...)
	// Events that came during the scan mean the files were still being
	// changed (a ConfigMap's old directory removed as it was read): the
	// rescan they schedule reports the outcome, this one nothing, unless
	// the burst has lasted MaxWait already.
	w.takePending()
	if g.deb.pending() && time.Since(first) < g.MaxWait {
		g.deb.resume(first)
		return true
	}
	if len(errs) > 0 && !w.problem(i, errors.Join(errs...)) {
		return false
	}
	if err == nil && len(errs) == 0 {
		g.errText = ""
	}
	h := total(sums)
	if h == g.hash {
		g.sums = sums
		return true
	}
	changed := diff(g.sums, sums)
	g.sums, g.hash = sums, h
	return w.send(Event{Group: i, Hash: h, Changed: changed})
}

// problem reports err for group i unless it was the last one reported.
func (w *Watcher) problem(i int, err error) bool {
	g := w.groups[i]
	if err.Error() == g.errText {
		return true
	}
	g.errText = err.Error()
	return w.send(Event{Group: i, Err: err})
}

func (w *Watcher) send(ev Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-w.done:
		return false
	}
}

// scan walks group i and makes the watches match what the walk depends on.
// When that adds a directory, the walk is repeated: something may have
// appeared in it before its watch was in place.
func (w *Watcher) scan(i int) (*scan, error) {
	g := w.groups[i]
	for try := 0; ; try++ {
		s := scanPaths(g.Paths)
		if g.polls() {
			return s, nil
		}
		added, err := w.arm(i, s.dirs)
		if err != nil || !added || try == 3 {
			return s, err
		}
	}
}

// arm makes group i's watches those of want. It reports whether a watch
// was added.
func (w *Watcher) arm(i int, want map[string]names) (bool, error) {
	g := w.groups[i]
	for p := range g.dirs {
		if _, ok := want[p]; ok {
			continue
		}
		if d := w.dirs[p]; d != nil {
			delete(d.groups, i)
			if len(d.groups) == 0 {
				w.be.Remove(p) // fails harmlessly when the directory is gone
				delete(w.dirs, p)
			}
		}
	}
	g.dirs = maps.Clone(want)
	added := false
	var firstErr error
	for p, ns := range want {
		dev, ino, err := identity(p)
		if err != nil {
			delete(g.dirs, p) // gone already: its parent's watch sees it return
			continue
		}
		d := w.dirs[p]
		if d != nil && (d.stale || d.dev != dev || d.ino != ino) {
			// Replaced by another directory under the same name: the
			// watch follows the old one, or is gone.
			w.be.Remove(p)
			delete(w.dirs, p)
			// The other groups that watched it rescan (and watch it
			// again), unless they are about to.
			for j := range d.groups {
				if other := w.groups[j]; j != i && !other.deb.pending() {
					other.deb.touch(time.Now())
				}
			}
			d = nil
		}
		if d == nil {
			if err := w.be.Add(p); err != nil {
				delete(g.dirs, p)
				if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
					continue
				}
				if firstErr == nil {
					firstErr = fmt.Errorf("adding a watch on %s: %w", p, limitError(err))
				}
				continue
			}
			d = &dir{dev: dev, ino: ino, groups: map[int]names{}}
			w.dirs[p] = d
			added = true
		}
		d.groups[i] = ns
	}
	return added, firstErr
}

func identity(p string) (dev, ino uint64, err error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return 0, 0, err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return 0, 0, fmt.Errorf("%s: %w", p, syscall.ENOTDIR)
	}
	return st.Dev, st.Ino, nil
}
