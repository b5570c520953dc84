"""What the kernel enforces on the sandbox's child, without root: Landlock, seccomp, prctl.

The first line of the trust boundary is the operating system, not Python: a child that has
escaped every Python guard still holds only what these leave it.

- `no_new_privs`: nothing it runs can gain privileges (and the two below need it).
- Landlock (Linux 5.13+): no file may be opened outside the scratch folder; no TCP bind or
  connect (ABI 4+); no signal to, or abstract socket of, a process outside the child (ABI 6+).
- seccomp: no new sockets, no ptrace or process_vm_*, no exec, no namespaces, no io_uring,
  no System V IPC or POSIX message queues, and no signal, resource limit, core, scheduling or
  priority set for any process but itself (x86_64 and aarch64).
- `not_dumpable`: same-user processes cannot read this process's /proc entries or ptrace it;
  the grader calls it on itself before its first sandbox, so a child cannot read the
  grader's environment or memory.

Each call says what held in a short phrase, or why it could not ("Landlock: not in this
kernel"); confine() collects them for the report's `environment.sandbox`. Written against
the kernel's documented ABI (linux/landlock.h, linux/seccomp.h, linux/filter.h) with ctypes,
so it needs no package and imports everywhere (every function is a no-op off Linux).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import select
import struct
import sys

LINUX = sys.platform.startswith("linux")

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL | None:
    global _libc  # noqa: PLW0603 - loaded once per process
    if _libc is None and LINUX:
        try:
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)  # glibc's name: no `ldconfig -p` to find it
        except OSError:
            try:
                _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so", use_errno=True)
            except OSError:
                return None
    return _libc


def _prctl(option: int, arg: int) -> int:
    libc = _c()
    if libc is None:
        return -1
    return int(libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                          ctypes.c_ulong(0)))


def not_dumpable() -> bool:
    """This process's /proc entries become root's, and it cannot be ptraced by its own user."""
    return _prctl(PR_SET_DUMPABLE, 0) == 0


def die_with_parent() -> bool:
    """SIGKILL this process when the one that started it ends (Linux)."""
    return _prctl(PR_SET_PDEATHSIG, 9) == 0


def wait_for_exit(pid: int, seconds: float) -> None:
    """Wait up to `seconds` for a child of this process to end, without reaping it: a pidfd (Linux 5.3+)
    is readable once it has. Returns at once where this system has no pidfds."""
    try:
        pidfd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        return
    try:
        select.select([pidfd], [], [], seconds)
    finally:
        os.close(pidfd)


def name_process(name: str) -> None:
    """The name `ps`, `top` and `perf` show for this process (Linux; its first 15 bytes)."""
    libc = _c()
    if libc is not None:
        libc.prctl(ctypes.c_int(PR_SET_NAME), ctypes.c_char_p(name.encode()[:15]), ctypes.c_ulong(0),
                   ctypes.c_ulong(0), ctypes.c_ulong(0))


def no_new_privs() -> str:
    return "no_new_privs" if _prctl(PR_SET_NO_NEW_PRIVS, 1) == 0 else ""


# --- Landlock ------------------------------------------------------------------------

SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
# Filesystem rights by the ABI that introduced them: 1 (13 rights), 2 REFER, 3 TRUNCATE, 5 IOCTL_DEV.
FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


def _syscall(number: int, *args: object) -> tuple[int, int]:
    libc = _c()
    if libc is None:
        return -1, errno.ENOSYS
    ctypes.set_errno(0)
    result = int(libc.syscall(ctypes.c_long(number), *args))
    return result, ctypes.get_errno()


def landlock_abi() -> int:
    """The Landlock ABI this kernel offers: 0 when it has none (or it is disabled)."""
    if not LINUX:
        return 0
    version, _ = _syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                          ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(version, 0)


def landlock_only(folder: str) -> str:
    """Restrict this process (and anything it would start) to `folder`: every file right inside
    it, none outside; no TCP and no signals or abstract sockets outside, where the ABI has them.
    Needs no_new_privs first. Says what held, or "" when Landlock is not there."""
    abi = landlock_abi()
    if abi < 1:
        return ""
    fs = FS_RIGHTS_BY_ABI[min(abi, 5)]
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset, err = _syscall(SYS_LANDLOCK_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    try:
        where = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            rule = ctypes.create_string_buffer(struct.pack("=Qi", fs, where), 12)  # packed path_beneath_attr
            added, err = _syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset),
                                  ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH), rule, ctypes.c_uint32(0))
            if added < 0:
                raise OSError(err, f"landlock_add_rule: {os.strerror(err)}")
        finally:
            os.close(where)
        done, err = _syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
        if done < 0:
            raise OSError(err, f"landlock_restrict_self: {os.strerror(err)}")
    finally:
        os.close(ruleset)
    held = ["files: the scratch folder only"]
    if net:
        held.append("no TCP")
    if scoped:
        held.append("no signals or abstract sockets outside")
    return f"Landlock ABI {abi} ({'; '.join(held)})"


# --- seccomp -------------------------------------------------------------------------

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# Refused with EPERM: new sockets, exec, tracing and reading other processes, namespaces, mounts,
# kernel-side programs and keys, io_uring (which would bypass this filter), handles, pidfds, and
# System V IPC and POSIX message queues (a channel to other children that no rule on files sees).
DENIED = {
    "x86_64": {"socket": 41, "socketpair": 53, "connect": 42, "bind": 49, "listen": 50, "accept": 43,
               "accept4": 288, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "tkill": 200,
               "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "unshare": 272, "setns": 308,
               "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "bpf": 321,
               "perf_event_open": 298, "userfaultfd": 323, "keyctl": 250, "add_key": 248, "request_key": 249,
               "kcmp": 312, "open_by_handle_at": 304, "name_to_handle_at": 303, "io_uring_setup": 425,
               "io_uring_enter": 426, "io_uring_register": 427, "pidfd_send_signal": 424, "pidfd_open": 434,
               "pidfd_getfd": 438, "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "semget": 64, "semop": 65,
               "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
               "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244,
               "mq_getsetattr": 245},
    "aarch64": {"socket": 198, "socketpair": 199, "connect": 203, "bind": 200, "listen": 201, "accept": 202,
                "accept4": 242, "execve": 221, "execveat": 281, "tkill": 130, "ptrace": 117,
                "process_vm_readv": 270, "process_vm_writev": 271, "unshare": 97, "setns": 268, "mount": 40,
                "umount2": 39, "pivot_root": 41, "chroot": 51, "bpf": 280, "perf_event_open": 241,
                "userfaultfd": 282, "keyctl": 219, "add_key": 217, "request_key": 218, "kcmp": 272,
                "open_by_handle_at": 265, "name_to_handle_at": 264, "io_uring_setup": 425,
                "io_uring_enter": 426, "io_uring_register": 427, "pidfd_send_signal": 424, "pidfd_open": 434,
                "pidfd_getfd": 438, "mq_open": 180, "mq_unlink": 181, "mq_timedsend": 182, "mq_timedreceive": 183,
                "mq_notify": 184, "mq_getsetattr": 185, "msgget": 186, "msgctl": 187, "msgrcv": 188, "msgsnd": 189,
                "semget": 190, "semctl": 191, "semtimedop": 192, "semop": 193, "shmget": 194, "shmctl": 195,
                "shmat": 196, "shmdt": 197},
}
# Signals go to this process only: kill(pid) with pid itself, 0 or -itself (its own group: it leads
# its session); tgkill and rt_*sigqueueinfo with its own thread group.
SIGNALS = {"x86_64": {"kill": 62, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297},
           "aarch64": {"kill": 129, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240}}
# What changes another process (its limits, cores, scheduling, priority, memory's placement) is for
# this process only: arg0 is its pid, or 0 for itself. A process of the same user (every other
# student's child runs as nobody too) could otherwise be given a CPU limit of 0 (killed), or be slowed.
OWN_PID_FIRST = {
    "x86_64": {"prlimit64": 302, "sched_setaffinity": 203, "sched_setscheduler": 144, "sched_setparam": 142,
               "sched_setattr": 314, "migrate_pages": 256, "move_pages": 279},
    "aarch64": {"prlimit64": 261, "sched_setaffinity": 122, "sched_setscheduler": 119, "sched_setparam": 118,
                "sched_setattr": 274, "migrate_pages": 238, "move_pages": 239},
}
# setpriority(which, who) and ioprio_set(which, who): only a process (not a group or a user), and itself.
PRIORITY = {"x86_64": {"setpriority": (141, 0), "ioprio_set": (251, 1)},
            "aarch64": {"setpriority": (140, 0), "ioprio_set": (30, 1)}}  # nr, and which names one process
CLONE = {"x86_64": 56, "aarch64": 220}
CLONE3 = 435  # its flags are in memory, out of the filter's sight: refused with ENOSYS, so libc uses clone
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80

RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_EPERM = 0x00050000 | errno.EPERM
RET_ENOSYS = 0x00050000 | errno.ENOSYS
LD_W_ABS, JEQ_K, JSET_K, RET_K = 0x20, 0x15, 0x45, 0x06
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0, OFFSET_ARG1 = 0, 4, 16, 24  # struct seccomp_data; args are u64, little-endian


def _only_where(nr: int, conditions: list[tuple[int, set[int]]]) -> list[tuple[int, int, int, int]]:
    """Syscall `nr` allowed only where each (offset, values) holds: that argument's low word (a pid_t, an
    int) is one of the values; refused with EPERM otherwise. Any other syscall jumps past, its number
    still loaded."""
    body: list[tuple[int, int, int, int]] = []
    for offset, values in conditions:
        allowed = sorted(values)
        body.append((LD_W_ABS, 0, 0, offset))
        for i, value in enumerate(allowed):
            body.append((JEQ_K, len(allowed) - i, 0, value))  # past the other values and the refusal
        body.append((RET_K, 0, 0, RET_EPERM))
    body.append((RET_K, 0, 0, RET_ALLOW))
    return [(JEQ_K, 0, len(body), nr), *body]


def seccomp_program(arch: str, pid: int) -> list[tuple[int, int, int, int]]:
    """The filter, as BPF instructions (code, jt, jf, k)."""
    prog: list[tuple[int, int, int, int]] = [
        (LD_W_ABS, 0, 0, OFFSET_ARCH),
        (JEQ_K, 1, 0, AUDIT_ARCH[arch]),
        (RET_K, 0, 0, RET_KILL_PROCESS),  # another ABI (32-bit entry points): nothing is allowed there
        (LD_W_ABS, 0, 0, OFFSET_NR),
    ]
    if arch == "x86_64":  # the x32 ABI's numbers have bit 30 set
        prog += [(0x35, 0, 1, 0x40000000), (RET_K, 0, 0, RET_EPERM)]  # JGE
    for nr in sorted(DENIED[arch].values()):
        prog += [(JEQ_K, 0, 1, nr), (RET_K, 0, 0, RET_EPERM)]
    prog += [(JEQ_K, 0, 1, CLONE3), (RET_K, 0, 0, RET_ENOSYS)]
    me = pid & 0xFFFFFFFF
    for name, nr in SIGNALS[arch].items():
        prog += _only_where(nr, [(OFFSET_ARG0, {me, 0, (-pid) & 0xFFFFFFFF} if name == "kill" else {me})])
    for nr in OWN_PID_FIRST[arch].values():
        prog += _only_where(nr, [(OFFSET_ARG0, {0, me})])
    for nr, one_process in PRIORITY[arch].values():
        prog += _only_where(nr, [(OFFSET_ARG0, {one_process}), (OFFSET_ARG1, {0, me})])
    prog += [
        (JEQ_K, 0, 4, CLONE[arch]),
        (LD_W_ABS, 0, 0, OFFSET_ARG0),
        (JSET_K, 0, 1, CLONE_NAMESPACES),
        (RET_K, 0, 0, RET_EPERM),
        (RET_K, 0, 0, RET_ALLOW),
        (RET_K, 0, 0, RET_ALLOW),
    ]
    return prog


def seccomp_filter() -> str:
    """Install the filter on this process; says what held, or "" where it cannot be had."""
    arch = platform.machine()
    libc = _c()
    if libc is None or arch not in AUDIT_ARCH:
        return ""
    prog = seccomp_program(arch, os.getpid())
    filters = (ctypes.c_uint64 * len(prog))(*(code | jt << 16 | jf << 24 | k << 32 for code, jt, jf, k in prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.cast(filters, ctypes.c_void_p))
    result = int(libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                            ctypes.byref(fprog), ctypes.c_ulong(0), ctypes.c_ulong(0)))
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {os.strerror(err)}")
    return "seccomp (no sockets, exec, ptrace, namespaces, IPC, or signals or limits to other processes)"


def confine(scratch: str) -> dict[str, str]:
    """Everything above, in the order the kernel needs (no_new_privs before the others), on this
    process; what held, by protection ("" where this system does not offer it)."""
    held = {"no_new_privs": no_new_privs()}
    held["landlock"] = landlock_only(scratch) if held["no_new_privs"] else ""
    held["seccomp"] = seccomp_filter() if held["no_new_privs"] else ""
    return held


def offered() -> dict[str, str]:
    """What this system can enforce on a child, said before one starts (for the report)."""
    if not LINUX:
        return {"landlock": "", "seccomp": ""}
    abi = landlock_abi()
    return {"landlock": f"Landlock ABI {abi}" if abi else "", "seccomp": "seccomp" if platform.machine() in AUDIT_ARCH
            else ""}
