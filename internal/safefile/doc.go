// Package safefile opens and reads files whose path someone other than
// hupd may control: hupd.toml (replaced while hupd runs), the files of a
// [[watch]] group, a candidate binary. Such a file may be swapped for a
// FIFO (whose open or read blocks forever), a device (/dev/zero never
// ends) or a huge file; hupd must neither hang nor grow on one.
//
// The rule: a path is opened once, O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_NOCTTY
// (opening a FIFO never blocks then), and fstat on that descriptor decides:
// only a regular file, reached directly or through symlinks, is read, and
// never more than a caller's limit plus one byte (to tell "exactly the
// limit" from "larger"). A stat before the open only spares opening a
// device; it decides nothing, as the path may change between the two.
// A refusal is a *RefusedError: errors.Is(err, ErrNotRegular) or
// errors.Is(err, ErrTooLarge), its message one line without the path
// (callers name the file, usually through the *fs.PathError returned).
package safefile
