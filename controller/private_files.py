"""Files that reveal intercepts (the intent store, the audit log): created
owner-only, and refused when anyone else could have read them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path


def open_private(path: Path, flags: int, error: type[Exception], what: str = "") -> int:
    """Open (creating with mode 0600 if absent) a file that reveals intercepts.

    Creating it with mode 0600 in the open call itself leaves no moment in
    which it exists with the umask's wider default. An existing file that
    group or others can read or write is refused with `error`, not silently
    chmod-ed: it may already have leaked, and the operator should know.
    `what` prefixes the messages ("audit log ").
    """
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what}{path} is not a regular file")
        if st.st_mode & 0o077:
            raise error(
                f"{what}{path} is accessible by group/others (mode {stat.S_IMODE(st.st_mode):04o}) and it reveals "
                f"intercepts: check who has read it, then run `chmod 600 {path}`"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def disk_trouble(path: Path) -> str | None:
    """Why the filesystem holding `path` may refuse writes (read-only, full),
    or None. SQLite reports a full disk as "disk I/O error" when it cannot
    even create its shared-memory file: the operator must read the cause, not
    a guess at damage, in the one line a refusal gets."""
    try:
        fs = os.statvfs(path if path.is_dir() else path.parent)
    except OSError:
        return None
    if fs.f_flag & os.ST_RDONLY:
        return "its filesystem is read-only"
    if fs.f_bavail == 0 or fs.f_favail == 0:
        return "its filesystem is full (no space left)"
    return None


def fsync_dir(path: Path) -> None:
    """Make a newly created file's directory entry durable, not just its data."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_private_json(path: Path, data: object, what: str = "", durable: bool = False, **dump: object) -> None:
    """Replace `path` atomically with `data` as JSON, owner-only (it names
    intercepts): a temp file beside it, renamed over it, so a reader never
    meets half a file. `durable`: the data and the rename are fsynced too,
    for state a restart reads back (not for a status file rewritten every
    second). `dump`: json.dump's options. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC, OSError, what)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, **dump)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path)
