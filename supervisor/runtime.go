package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hupd/hupd/internal/logev"
	"github.com/hupd/hupd/socketact"
	"golang.org/x/sys/unix"
)

// The runtime directory: what a running hupd keeps on disk besides its
// control socket lives in one directory beside that socket, named after
// it (NAME.sock → NAME.d, see RuntimeDirFor):
//
//   - lock: held with flock(LOCK_EX) by the hupd that owns the directory,
//     for its whole life (its in-place upgrades too: the fd crosses the
//     exec); it holds that hupd's PID;
//   - notify/: the generations' notify sockets;
//   - notify-elsewhere: a symbolic link naming the hupd-notify-* directory
//     made in the temp dir instead, when a child of another user could not
//     reach notify/ (see notifyDir); it is read, never followed;
//   - notify@PROGRAM/ and notify-elsewhere@PROGRAM: the same for each
//     program when hupd runs several (ForProgram), so that two programs'
//     gen-N.sock never collide.
//
// The lock tells a live owner from a dead one: a start that takes it knows
// the previous owner is gone, and removes what that one left (its control
// socket, the directory's contents), never following a symbolic link and
// never leaving the directory. A start that cannot take it fails at once.
//
// Trust: hupd never follows a symbolic link for a directory it makes (the
// default control directory, the runtime directory), and refuses one that
// is not owned by its effective user or that its group or others may
// write. The parent of an explicit --control path is used as given but
// must be owned by hupd's user or root and not writable by others unless
// sticky (as /tmp).

// Names inside the runtime directory.
const (
	runtimeLock      = "lock"
	runtimeNotify    = "notify"
	runtimeElsewhere = "notify-elsewhere"
	notifyTempPrefix = "hupd-notify-"
)

// ErrUntrusted is wrapped by the errors about a control or runtime
// directory hupd or its client will not use.
var ErrUntrusted = errors.New("supervisor: untrusted control directory or server")

// AlreadyRunningError is returned by OpenRuntime when a live hupd owns the
// runtime directory.
type AlreadyRunningError struct {
	Name string
	PID  int // 0 when the lock file did not say
	Dir  string
}

func (e *AlreadyRunningError) Error() string {
	pid := "pid unknown"
	if e.PID > 0 {
		pid = "pid " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("hupd %s already running (%s): it holds %s; run this one under another name (--name, or name in hupd.toml)",
		e.Name, pid, filepath.Join(e.Dir, runtimeLock))
}

// RuntimeDirFor returns the runtime directory of the hupd whose control
// socket is controlPath: beside it, named after it without ".sock", plus
// ".d" (/run/hupd/web.sock → /run/hupd/web.d).
func RuntimeDirFor(controlPath string) string {
	base := strings.TrimSuffix(filepath.Base(controlPath), ".sock")
	return filepath.Join(filepath.Dir(controlPath), base+".d")
}

// Runtime is an open, locked runtime directory.
type Runtime struct {
	// Dir is the directory's absolute path.
	Dir string

	name     string
	ctl      string // the control socket's absolute path
	explicit bool
	lockFD   int
	dirMode  uint32
	// program: this value is ForProgram's view for that program, whose
	// notify sockets live in notify-PROGRAM/ ("": hupd's one program).
	program string
}

// dirMode is the mode of the directories hupd makes: private to its user,
// but root's may be traversed (not listed) by other users, so that a child
// dropped to another user reaches its notify socket; root's control socket
// itself is 0600.
func dirMode() uint32 {
	if os.Geteuid() == 0 {
		return 0o711
	}
	return 0o700
}

// OpenRuntime makes (if needed), checks and locks the runtime directory of
// the hupd named name whose control socket is controlPath; explicit says
// whether the path was given (--control) or is the default one. On
// success it has removed what a dead hupd of the same directory left (and
// logged it). Errors:
//   - *AlreadyRunningError: another hupd owns the directory; nothing was
//     changed;
//   - an error wrapping ErrUntrusted: a directory on the way is not
//     hupd's (its message says which and what to do);
//   - any other error: the directory could not be made or locked.
func OpenRuntime(name, controlPath string, explicit bool, log *slog.Logger) (*Runtime, error) {
	return openRuntime(name, controlPath, explicit, -1, log)
}

// AdoptRuntime is OpenRuntime in the image an in-place upgrade started: it
// takes over the runtime directory whose lock fd the previous image handed
// over (Upgrade.Lock). If lockFD is 0 (the previous binary had no runtime
// directory), the directory is locked as OpenRuntime does, but nothing in
// it is taken for a dead hupd's: the previous image is this very process.
// If lockFD is not the lock of that directory (name and control path are
// not the previous image's: see Upgrade.Identity), it is an error, and
// lockFD stays open for the previous image to take back.
func AdoptRuntime(name, controlPath string, explicit bool, lockFD int, log *slog.Logger) (*Runtime, error) {
	if lockFD <= 0 {
		lockFD = adoptNone
	}
	return openRuntime(name, controlPath, explicit, lockFD, log)
}

// adoptNone: an upgrade without a lock to adopt.
const adoptNone = -2

func openRuntime(name, controlPath string, explicit bool, adopt int, log *slog.Logger) (*Runtime, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctl, err := filepath.Abs(controlPath)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", controlPath, err)
	}
	// A directory removed by an exiting owner between our open and our
	// lock: start again, a few times.
	for range 5 {
		r, err := tryRuntime(name, ctl, explicit, adopt, log)
		if !errors.Is(err, errRuntimeMoved) {
			return r, err
		}
	}
	return nil, fmt.Errorf("runtime directory %s: it keeps being replaced", RuntimeDirFor(ctl))
}

var errRuntimeMoved = errors.New("runtime directory replaced")

var errNotHandedOverLock = errors.New("supervisor: its lock is not the one the previous image handed over")

func tryRuntime(name, ctl string, explicit bool, adopt int, log *slog.Logger) (*Runtime, error) {
	r := &Runtime{Dir: RuntimeDirFor(ctl), name: name, ctl: ctl, explicit: explicit, lockFD: -1, dirMode: dirMode()}
	ctlFD, err := openControlDir(filepath.Dir(ctl), explicit, r.dirMode)
	if err != nil {
		return nil, err
	}
	defer unix.Close(ctlFD)
	base := filepath.Base(r.Dir)
	dirFD, err := ownDirAt(ctlFD, base, r.Dir, "runtime directory", r.dirMode)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dirFD)
	if adopt >= 0 && sameFileAt(adopt, dirFD, runtimeLock) {
		r.lockFD = adopt
		unix.CloseOnExec(adopt)
		if err := unix.Flock(adopt, unix.LOCK_EX|unix.LOCK_NB); err != nil { // ours already: a no-op
			return nil, fmt.Errorf("runtime directory %s: handed-over lock: %w", r.Dir, os.NewSyscallError("flock", err))
		}
		return r, nil
	}
	if adopt >= 0 {
		// Not the lock of the directory the previous image had: never
		// dropped (a second hupd could then take the name), and kept open
		// for the previous image, which takes its state back.
		return nil, fmt.Errorf("runtime directory %s: %w", r.Dir, errNotHandedOverLock)
	}
	if err := r.lock(ctlFD, dirFD); err != nil {
		return nil, err
	}
	if adopt != -1 { // an upgrade: the control socket is this process's
		if err := writePID(r.lockFD); err != nil {
			r.closeLock()
			return nil, fmt.Errorf("runtime directory %s: %w", r.Dir, err)
		}
		return r, nil
	}
	old, _ := readPID(r.lockFD)
	removed := r.cleanStale(ctlFD, dirFD)
	if err := writePID(r.lockFD); err != nil {
		r.closeLock()
		return nil, fmt.Errorf("runtime directory %s: %w", r.Dir, err)
	}
	if len(removed) > 0 {
		log.Info(logev.RuntimeCleanedUp, KeyPath, r.Dir, KeyPID, old, "removed", strings.Join(removed, " "))
	}
	return r, nil
}

// lock opens and locks the lock file in dirFD; on error r holds nothing.
func (r *Runtime) lock(ctlFD, dirFD int) (err error) {
	r.lockFD, err = unix.Openat(dirFD, runtimeLock, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		r.lockFD = -1
		return fmt.Errorf("runtime directory %s: %w", r.Dir, os.NewSyscallError("open "+runtimeLock, err))
	}
	defer func() {
		if err != nil {
			r.closeLock()
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(r.lockFD, &st); err != nil {
		return fmt.Errorf("runtime directory %s: %w", r.Dir, os.NewSyscallError("fstat", err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != os.Geteuid() {
		return &untrustedError{fmt.Sprintf("%s is not a file of uid %d: remove it", filepath.Join(r.Dir, runtimeLock), os.Geteuid())}
	}
	if err := unix.Flock(r.lockFD, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, _ := readPID(r.lockFD)
			return &AlreadyRunningError{Name: r.name, PID: pid, Dir: r.Dir}
		}
		return fmt.Errorf("runtime directory %s: %w", r.Dir, os.NewSyscallError("flock", err))
	}
	// The lock counts only if its file is still the one in the directory,
	// and the directory still the one beside the control socket.
	if !sameFileAt(r.lockFD, dirFD, runtimeLock) || !sameFileAt(dirFD, ctlFD, filepath.Base(r.Dir)) {
		return errRuntimeMoved
	}
	return nil
}

// openDirs opens the control directory and the runtime directory again,
// checked as at the start, and makes sure the lock r holds is in it.
func (r *Runtime) openDirs() (ctlFD, dirFD int, err error) {
	if r.lockFD < 0 {
		return -1, -1, errors.New("supervisor: runtime directory closed")
	}
	if ctlFD, err = openControlDir(filepath.Dir(r.ctl), r.explicit, r.dirMode); err != nil {
		return -1, -1, err
	}
	if dirFD, err = ownDirAt(ctlFD, filepath.Base(r.Dir), r.Dir, "runtime directory", r.dirMode); err != nil {
		unix.Close(ctlFD)
		return -1, -1, err
	}
	if !sameFileAt(r.lockFD, dirFD, runtimeLock) {
		unix.Close(ctlFD)
		unix.Close(dirFD)
		return -1, -1, fmt.Errorf("runtime directory %s: its lock is no longer hupd's", r.Dir)
	}
	return ctlFD, dirFD, nil
}

// openControlDir opens the control socket's directory and checks it; a
// default one is made if missing and never followed if a symbolic link.
func openControlDir(dir string, explicit bool, mode uint32) (int, error) {
	if explicit {
		// The path the user gave, as given; made (as the default one) if
		// missing.
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(dir, fs.FileMode(mode)); err != nil {
				return -1, fmt.Errorf("control directory %s: %w", dir, err)
			}
			if err := os.Chmod(dir, fs.FileMode(mode)); err != nil { // MkdirAll applied the umask
				return -1, fmt.Errorf("control directory %s: %w", dir, err)
			}
		}
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("control directory %s: %w", dir, os.NewSyscallError("open", err))
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("control directory %s: %w", dir, os.NewSyscallError("fstat", err))
		}
		if err := checkParentDir(dir, &st, os.Geteuid()); err != nil {
			unix.Close(fd)
			return -1, err
		}
		return fd, nil
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return -1, fmt.Errorf("control directory %s: %w", dir, err)
	}
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("control directory %s: %w", dir, os.NewSyscallError("open", err))
	}
	defer unix.Close(pfd)
	return ownDirAt(pfd, filepath.Base(dir), dir, "control directory", mode)
}

// ownDirAt makes (if missing) and opens the directory name in dirfd,
// never following a symbolic link, and checks that it is hupd's own.
func ownDirAt(dirfd int, name, path, what string, mode uint32) (int, error) {
	created := unix.Mkdirat(dirfd, name, mode) == nil
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFLNK:
				return -1, untrusted(what, path, "is a symbolic link")
			case unix.S_IFDIR:
			default:
				return -1, untrusted(what, path, "is not a directory")
			}
		}
		return -1, fmt.Errorf("%s %s: %w", what, path, os.NewSyscallError("open", err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%s %s: %w", what, path, os.NewSyscallError("fstat", err))
	}
	euid := os.Geteuid()
	if int(st.Uid) != euid {
		unix.Close(fd)
		return -1, untrusted(what, path, fmt.Sprintf("is owned by uid %d, not %d", st.Uid, euid))
	}
	if st.Mode&0o022 != 0 && !created {
		unix.Close(fd)
		return -1, untrusted(what, path, fmt.Sprintf("is writable by group or others (mode %#o)", st.Mode&0o7777))
	}
	// Exact mode (mkdir applied the umask), also on one an older hupd
	// made 0700.
	if st.Mode&0o7777 != mode {
		if err := unix.Fchmod(fd, mode); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("%s %s: %w", what, path, os.NewSyscallError("fchmod", err))
		}
	}
	return fd, nil
}

func untrusted(what, path, why string) error {
	return &untrustedError{fmt.Sprintf("%s %s %s: remove it, or set XDG_RUNTIME_DIR or --control", what, path, why)}
}

// untrustedError is a one-line refusal of a directory; it is ErrUntrusted.
type untrustedError struct{ msg string }

func (e *untrustedError) Error() string        { return e.msg }
func (e *untrustedError) Is(target error) bool { return target == ErrUntrusted }

// checkParentDir checks the directory of an explicit control path: owned
// by hupd's user or root, and writable by group or others only if sticky
// (where only a file's owner may remove or rename it).
func checkParentDir(dir string, st *unix.Stat_t, euid int) error {
	if st.Uid != 0 && int(st.Uid) != euid {
		return &untrustedError{fmt.Sprintf("control directory %s is owned by uid %d, not %s: choose another --control", dir, st.Uid, ownerOrRoot(euid))}
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return &untrustedError{fmt.Sprintf("control directory %s is writable by group or others (mode %#o) and not sticky: choose another --control", dir, st.Mode&0o7777)}
	}
	return nil
}

func ownerOrRoot(euid int) string {
	if euid == 0 {
		return "root"
	}
	return strconv.Itoa(euid) + " or root"
}

// CheckControlDir is the client's check before it connects to the control
// socket at path: explicit when the path was given (--control,
// $HUPD_CONTROL), else a default one (--name). The directory
// must be owned by the client's user or root and not writable by group or
// others; a default one must not be a symbolic link, an explicit one's may
// be writable by others if sticky. A missing directory is not an error
// (there is no hupd to reach). The error wraps ErrUntrusted.
func CheckControlDir(path string, explicit bool) error {
	dir := filepath.Dir(path)
	var st unix.Stat_t
	euid := os.Geteuid()
	if explicit {
		if err := unix.Stat(dir, &st); err != nil {
			return nil
		}
		return checkParentDir(dir, &st, euid)
	}
	if err := unix.Lstat(dir, &st); err != nil {
		return nil
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return untrusted("control directory", dir, "is a symbolic link")
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return untrusted("control directory", dir, "is not a directory")
	case st.Uid != 0 && int(st.Uid) != euid:
		return untrusted("control directory", dir, fmt.Sprintf("is owned by uid %d, not %d", st.Uid, euid))
	case st.Mode&0o022 != 0:
		return untrusted("control directory", dir, fmt.Sprintf("is writable by group or others (mode %#o)", st.Mode&0o7777))
	}
	return nil
}

// MakeControlDir makes dir, the control socket's directory, if it is
// missing (0700, 0711 as root: see dirMode); an existing one must be a
// directory owned by hupd's user or root, and not writable by group or
// others unless sticky. The error about a directory that is not hupd's
// wraps ErrUntrusted. OpenRuntime has checked a control directory more
// strictly before hupd run listens in it.
func MakeControlDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, fs.FileMode(dirMode())); err != nil {
			return fmt.Errorf("control socket directory: %w", err)
		}
		// MkdirAll applied the umask; make the mode exact.
		return os.Chmod(dir, fs.FileMode(dirMode()))
	} else if err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("control socket directory %s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		var ust unix.Stat_t
		ust.Uid, ust.Mode = st.Uid, st.Mode
		return checkParentDir(dir, &ust, os.Geteuid())
	}
	return nil
}

// sameFileAt reports whether fd is the file name in dirfd (not followed).
func sameFileAt(fd, dirfd int, name string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(fd, &a) != nil || unix.Fstatat(dirfd, name, &b, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func readPID(fd int) (int, error) {
	b := make([]byte, 32)
	n, err := unix.Pread(fd, b, 0)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b[:n])))
}

func writePID(fd int) error {
	if err := unix.Ftruncate(fd, 0); err != nil {
		return os.NewSyscallError("ftruncate", err)
	}
	if _, err := unix.Pwrite(fd, []byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return os.NewSyscallError("pwrite", err)
	}
	return nil
}

// cleanStale removes what a dead owner left: its control socket (unless
// something listens on it) and everything in the directory but the lock.
// It returns what it removed.
func (r *Runtime) cleanStale(ctlFD, dirFD int) []string {
	var removed []string
	var st unix.Stat_t
	sock := filepath.Base(r.ctl)
	if unix.Fstatat(ctlFD, sock, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK &&
		int(st.Uid) == os.Geteuid() {
		// The directory is checked: its path names what ctlFD is.
		if socketact.RemoveStaleSocket(r.ctl) == nil {
			removed = append(removed, r.ctl)
		}
	}
	for _, name := range entries(dirFD, r.Dir) {
		if name == runtimeLock {
			continue
		}
		if strings.HasPrefix(name, runtimeElsewhere) {
			if p := removeElsewhere(dirFD, name); p != "" {
				removed = append(removed, p)
			}
		}
		if removeAt(dirFD, name) == nil {
			removed = append(removed, filepath.Join(r.Dir, name))
		}
	}
	return removed
}

func entries(dirFD int, path string) []string {
	fd, err := unix.Openat(dirFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	return names
}

// removeElsewhere removes the notify directory the notify-elsewhere link
// called link names, if it is one hupd made (a hupd-notify-* directory of
// its user); it returns its path if it removed it.
func removeElsewhere(dirFD int, link string) string {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirFD, link, buf)
	if err != nil {
		return ""
	}
	p := string(buf[:n])
	var st unix.Stat_t
	if !filepath.IsAbs(p) || !strings.HasPrefix(filepath.Base(p), notifyTempPrefix) ||
		unix.Lstat(p, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
		return ""
	}
	if os.RemoveAll(p) != nil { // never follows a symbolic link inside
		return ""
	}
	return p
}

// removeAt removes name in dirfd and, if it is a directory, everything in
// it, never following a symbolic link.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	names, _ := f.Readdirnames(-1)
	for _, n := range names {
		removeAt(fd, n)
	}
	f.Close()
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// LockFD is the lock's fd, for an upgrade to hand over; -1 after Close.
func (r *Runtime) LockFD() int { return r.lockFD }

// Close is for hupd's clean exit: it removes everything in the directory,
// then the directory, and releases the lock. Calling it again does nothing.
func (r *Runtime) Close() {
	if r.lockFD < 0 {
		return
	}
	defer r.closeLock()
	ctlFD, dirFD, err := r.openDirs()
	if err != nil {
		return // not ours to clean any more
	}
	defer unix.Close(ctlFD)
	defer unix.Close(dirFD)
	for _, name := range entries(dirFD, r.Dir) {
		if strings.HasPrefix(name, runtimeElsewhere) {
			removeElsewhere(dirFD, name)
		}
		if name != runtimeLock {
			removeAt(dirFD, name)
		}
	}
	unix.Unlinkat(dirFD, runtimeLock, 0)
	unix.Unlinkat(ctlFD, filepath.Base(r.Dir), unix.AT_REMOVEDIR) // not if a new owner made a lock already
}

func (r *Runtime) closeLock() {
	if r.lockFD >= 0 {
		unix.Close(r.lockFD)
		r.lockFD = -1
	}
}

// notifyDir makes the directory for the notify sockets of children that run
// as uid and gid (-1: hupd's own): Dir/notify, when such a child can reach
// it (every directory above it lets that user through, and a socket path
// in it fits sockaddr_un), else a hupd-notify-* directory in the temp dir,
// recorded in Dir/notify-elsewhere so that a start after a crash removes
// it. The directory's mode is socketact.NotifyDirModeShared when uid is
// another user than hupd's, else NotifyDirMode. An existing one is reused.
func (r *Runtime) notifyDir(uid, gid int) (string, error) {
	ctlFD, dirFD, err := r.openDirs()
	if err != nil {
		return "", err
	}
	unix.Close(ctlFD)
	defer unix.Close(dirFD)
	shared := uid > 0 && uid != os.Geteuid()
	dir := filepath.Join(r.Dir, r.notifyName())
	elsewhere := r.elsewhereName()
	const sockName = "gen-1000000.sock" // a long generation's socket
	fits := len(filepath.Join(dir, sockName)) < len(unix.RawSockaddrUnix{}.Path)
	if fits && (!shared || traversable(r.Dir, uid, gid)) {
		mode := socketact.NotifyDirMode
		if shared {
			mode = socketact.NotifyDirModeShared
		}
		fd, err := ownDirAt(dirFD, r.notifyName(), dir, "notify socket directory", uint32(mode))
		if err != nil {
			return "", err
		}
		unix.Close(fd)
		return dir, nil
	}
	// Reuse the one recorded, if it is still there.
	buf := make([]byte, unix.PathMax)
	if n, err := unix.Readlinkat(dirFD, elsewhere, buf); err == nil {
		p := string(buf[:n])
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && int(st.Uid) == os.Geteuid() {
			if shared {
				os.Chmod(p, socketact.NotifyDirModeShared)
			}
			return p, nil
		}
		unix.Unlinkat(dirFD, elsewhere, 0)
	}
	p, err := socketact.NotifyDir("", uid)
	if err != nil {
		return "", err
	}
	if err := unix.Symlinkat(p, dirFD, elsewhere); err != nil {
		os.Remove(p)
		return "", fmt.Errorf("runtime directory %s: %w", r.Dir, os.NewSyscallError("symlink", err))
	}
	return p, nil
}

// traversable reports whether a process of uid and gid may search every
// directory from / down to dir, by their mode bits. Supplementary groups
// and ACLs, which can only let more through, are not considered: a false
// answer only moves the notify sockets to the temp dir.
func traversable(dir string, uid, gid int) bool {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		bit := fs.FileMode(0o001)
		switch {
		case int(st.Uid) == uid:
			bit = 0o100
		case gid >= 0 && int(st.Gid) == gid:
			bit = 0o010
		}
		if fi.Mode().Perm()&bit == 0 {
			return false
		}
		if p == "/" || p == "." {
			return true
		}
	}
}

// keepNotifyDir records dir, the notify directory handed over by an
// upgrade, in notify-elsewhere when it is outside the runtime directory (a
// previous binary made it in the temp dir), so that a start after a crash
// removes it.
func (r *Runtime) keepNotifyDir(dir string) {
	if dir == "" || strings.HasPrefix(dir, r.Dir+"/") {
		return
	}
	ctlFD, dirFD, err := r.openDirs()
	if err != nil {
		return
	}
	unix.Close(ctlFD)
	defer unix.Close(dirFD)
	unix.Unlinkat(dirFD, r.elsewhereName(), 0)
	unix.Symlinkat(dir, dirFD, r.elsewhereName())
}

// ForProgram is r as the supervisor of program name uses it when hupd
// runs several programs (UseRuntime): the same directory and lock (which
// only r may Close or hand over), with that program's notify sockets in a
// directory of their own, notify@NAME (name is a valid program name, see
// config.ValidProgramName). ForProgram("") is r.
func (r *Runtime) ForProgram(name string) *Runtime {
	if name == "" {
		return r
	}
	v := *r
	v.program = name
	return &v
}

// notifyName is the name of r's notify directory in Dir.
func (r *Runtime) notifyName() string {
	if r.program == "" {
		return runtimeNotify
	}
	return runtimeNotify + "@" + r.program
}

// elsewhereName is the name of the link to r's notify directory made
// outside Dir (see notifyDir).
func (r *Runtime) elsewhereName() string {
	if r.program == "" {
		return runtimeElsewhere
	}
	return runtimeElsewhere + "@" + r.program
}
