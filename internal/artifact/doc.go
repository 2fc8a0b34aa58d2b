// Package artifact stores revision bundles content-addressed and unpacks them
// safely for a fleet.
//
// A bundle is a file tree: regular files, directories, and symlinks that stay
// inside the tree. However it arrives — a directory, a .tar.gz/.tgz, a plain
// .tar or a .zip — it is reduced to one canonical form, so the same tree
// always gets the same digest (see Digest) and is stored once.
//
// Every source goes through the same checks before anything is kept:
// relative paths without ".." segments, no entry below a symlink or a file,
// symlinks that resolve inside the tree even when followed through each
// other, hardlinks only to earlier files (stored as copies), no devices,
// fifos or sockets, and the Limits, counted on bytes actually read. Files
// keep their permission bits, without setuid, setgid or sticky bits;
// directories always keep owner rwx so an unpacked fleet can be removed.
//
// Unpacking re-applies the same checks to the stored bundle and writes only
// through os.Root, creating symlinks last, after the whole tree has passed.
package artifact
