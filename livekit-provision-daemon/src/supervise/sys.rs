//! The only `unsafe` code of the supervision layer: the double fork that detaches a media process,
//! and the two pidfd system calls that `nix` 0.30 does not wrap.
//!
//! Everything the forked children touch is prepared by the parent beforehand (C strings, pointer
//! arrays, open descriptors), so that between `fork` and `execve` only async-signal-safe calls run:
//! `fork`, `setsid`, `dup2`, `chdir`, `sigprocmask`, `signal`, `syscall(close_range)`, `execve`,
//! `write`, `_exit`. No allocation, no lock, no Rust runtime code.

use std::ffi::{CString, c_char, c_int};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use zeroize::Zeroizing;

/// Everything a detached start needs, prepared before any fork.
pub(super) struct ExecPlan {
    /// The program, as a path (no `PATH` search happens after the fork).
    pub program: CString,
    /// `argv`, `argv[0]` included.
    pub argv: Vec<CString>,
    /// `NAME=value` entries, each NUL-terminated; zeroed on drop (they may hold secrets).
    pub env: Vec<Zeroizing<Vec<u8>>>,
    /// The working directory.
    pub cwd: CString,
    /// Becomes fd 0. Must be a descriptor >= 3.
    pub stdin: OwnedFd,
    /// Becomes fds 1 and 2. Must be a descriptor >= 3.
    pub output: OwnedFd,
}

/// The step of the grandchild that failed, as reported through the error pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChildStep {
    /// `setsid()`.
    Setsid,
    /// Redirecting stdin/stdout/stderr.
    Redirect,
    /// `chdir()` into the state directory.
    Chdir,
    /// `execve()` of the program.
    Exec,
}

impl ChildStep {
    fn code(self) -> i32 {
        match self {
            Self::Setsid => 1,
            Self::Redirect => 2,
            Self::Chdir => 3,
            Self::Exec => 4,
        }
    }

    fn from_code(code: i32) -> Option<Self> {
        [Self::Setsid, Self::Redirect, Self::Chdir, Self::Exec]
            .into_iter()
            .find(|s| s.code() == code)
    }

    /// What the step does, for error messages.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Self::Setsid => "creating a new session",
            Self::Redirect => "redirecting stdin/stdout/stderr",
            Self::Chdir => "changing into the state directory",
            Self::Exec => "executing the program",
        }
    }
}

/// Why a detached start failed.
#[derive(Debug)]
pub(super) enum SpawnFailure {
    /// The parent could not fork, make a pipe, or read the children's report.
    Parent(io::Error),
    /// The intermediate child could not fork.
    IntermediateFork(io::Error),
    /// The grandchild failed at `step` before running the program.
    Child(ChildStep, io::Error),
}

/// Raw pointers handed to the children. Built from an [`ExecPlan`] that outlives the fork.
struct RawPlan {
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    stdin: RawFd,
    output: RawFd,
    pid_w: RawFd,
    err_w: RawFd,
}

/// Start `plan` as a grandchild in its own session, and return its pid.
///
/// The intermediate child forks the grandchild, writes its pid into a pipe and exits at once, so
/// the grandchild is reparented to init (or the nearest subreaper) and is never our descendant.
/// The grandchild calls `setsid` (so it leads its own session and process group), redirects its
/// stdio, enters the working directory, resets signal mask and dispositions, marks every other
/// inherited descriptor close-on-exec and executes the program. If any step fails it writes
/// `(step, errno)` into a close-on-exec pipe; end-of-file on that pipe without a report means the
/// `execve` succeeded.
#[allow(unsafe_code)]
pub(super) fn spawn_detached(plan: &ExecPlan) -> Result<u32, SpawnFailure> {
    let argv: Vec<*const c_char> = plan
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect();
    let envp: Vec<*const c_char> = plan
        .env
        .iter()
        .map(|e| e.as_ptr().cast::<c_char>())
        .chain(std::iter::once(ptr::null()))
        .collect();
    let (pid_r, pid_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(errno_to_parent)?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(errno_to_parent)?;
    let raw = RawPlan {
        program: plan.program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: plan.cwd.as_ptr(),
        stdin: plan.stdin.as_raw_fd(),
        output: plan.output.as_raw_fd(),
        pid_w: pid_w.as_raw_fd(),
        err_w: err_w.as_raw_fd(),
    };

    // SAFETY: `fork` in a possibly multi-threaded process is sound as long as the child only makes
    // async-signal-safe calls until it execs or exits. `intermediate_child` and `grandchild` use
    // only raw libc calls on memory prepared above (which stays valid: the child has a copy of
    // this address space, and the parent keeps `plan`, `argv` and `envp` alive until after the
    // reports are read) and end in `execve` or `_exit`, never returning into Rust code.
    let intermediate = unsafe { libc::fork() };
    if intermediate < 0 {
        return Err(SpawnFailure::Parent(io::Error::last_os_error()));
    }
    if intermediate == 0 {
        // SAFETY: see above; this never returns.
        unsafe { intermediate_child(&raw) }
    }
    drop(pid_w);
    drop(err_w);
    reap(intermediate);

    let mut pid_bytes = [0u8; 4];
    File::from(pid_r)
        .read_exact(&mut pid_bytes)
        .map_err(SpawnFailure::Parent)?;
    let reported = i32::from_ne_bytes(pid_bytes);
    if reported <= 0 {
        return Err(SpawnFailure::IntermediateFork(
            io::Error::from_raw_os_error(-reported),
        ));
    }
    let mut report = Vec::with_capacity(8);
    File::from(err_r)
        .read_to_end(&mut report)
        .map_err(SpawnFailure::Parent)?;
    if report.len() >= 8 {
        let step = i32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
        let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
        let step = ChildStep::from_code(step).unwrap_or(ChildStep::Exec);
        return Err(SpawnFailure::Child(
            step,
            io::Error::from_raw_os_error(errno),
        ));
    }
    u32::try_from(reported)
        .map_err(|_| SpawnFailure::Parent(io::Error::other(format!("bad pid report {reported}"))))
}

fn errno_to_parent(e: Errno) -> SpawnFailure {
    SpawnFailure::Parent(io::Error::from(e))
}

/// Collect the intermediate child's exit status. `ECHILD` (SIGCHLD ignored, so it was reaped
/// automatically) is fine.
fn reap(pid: c_int) {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Err(Errno::EINTR) => {}
            _ => return,
        }
    }
}

/// Runs in the intermediate child: fork the grandchild, report its pid (or `-errno`), exit.
#[allow(unsafe_code)]
unsafe fn intermediate_child(raw: &RawPlan) -> ! {
    // SAFETY: async-signal-safe calls only (fork, write, _exit); see `spawn_detached`.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            grandchild(raw);
        }
        let message: i32 = if pid < 0 { -Errno::last_raw() } else { pid };
        write_all(raw.pid_w, &message.to_ne_bytes());
        libc::_exit(0)
    }
}

/// Runs in the grandchild: become a session leader, set up stdio and cwd, exec.
#[allow(unsafe_code)]
unsafe fn grandchild(raw: &RawPlan) -> ! {
    // SAFETY: async-signal-safe calls only, on descriptors and C strings prepared by the parent.
    unsafe {
        if libc::setsid() < 0 {
            fail(raw, ChildStep::Setsid);
        }
        if libc::dup2(raw.stdin, 0) < 0
            || libc::dup2(raw.output, 1) < 0
            || libc::dup2(raw.output, 2) < 0
        {
            fail(raw, ChildStep::Redirect);
        }
        if libc::chdir(raw.cwd) < 0 {
            fail(raw, ChildStep::Chdir);
        }
        reset_for_exec();
        libc::execve(raw.program, raw.argv, raw.envp);
        fail(raw, ChildStep::Exec)
    }
}

/// What must not survive into the program, done right before an `execve` (the detached start's
/// grandchild, and `livekit-provision exec`): the caller's signal mask and ignored signals (Rust
/// ignores SIGPIPE), and descriptors leaked without CLOEXEC (a lock, a socket) — marked
/// close-on-exec; best effort, kernels before 5.11 lack `close_range`.
#[allow(unsafe_code)]
pub(super) fn reset_for_exec() {
    // SAFETY: async-signal-safe calls on a local, zero-initialised signal set and plain integers;
    // nothing here touches memory the caller owns.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const empty, ptr::null_mut());
        for signal in 1..32 {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
}

#[allow(unsafe_code)]
unsafe fn fail(raw: &RawPlan, step: ChildStep) -> ! {
    let errno = Errno::last_raw();
    let mut report = [0u8; 8];
    report[..4].copy_from_slice(&step.code().to_ne_bytes());
    report[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write and _exit are async-signal-safe.
    unsafe {
        write_all(raw.err_w, &report);
        libc::_exit(127)
    }
}

#[allow(unsafe_code)]
unsafe fn write_all(fd: RawFd, bytes: &[u8]) {
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: the pointer and length describe the live remainder of `bytes`.
        let n = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        match usize::try_from(n) {
            Ok(n) if n > 0 => done += n,
            _ if Errno::last() == Errno::EINTR => {}
            _ => return,
        }
    }
}

/// `pidfd_open(pid, 0)`: a descriptor that refers to this process (not to its pid number) for as
/// long as we hold it, and becomes readable when the process exits.
#[allow(unsafe_code)]
pub(super) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: the system call takes two integers and returns a new descriptor or -1; it reads
    // and writes no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(fd, signal, NULL, 0)`: signal exactly the process the pidfd refers to; a
/// recycled pid cannot be hit. `ESRCH` means it has exited.
#[allow(unsafe_code)]
pub(super) fn pidfd_send_signal(fd: BorrowedFd<'_>, signal: Signal) -> io::Result<()> {
    // SAFETY: integers and a null siginfo pointer, which the kernel accepts as "like kill(2)".
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal as c_int,
            ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A C string from bytes, or `None` when they contain a NUL byte.
pub(super) fn c_string(bytes: &[u8]) -> Option<CString> {
    CString::new(bytes).ok()
}

/// Register a pidfd with the tokio reactor, for read readiness (the process has exited).
#[allow(unsafe_code)]
pub(super) fn register_pidfd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the `AsyncFd` takes ownership of the `OwnedFd`, which stays open and refers to the
    // same pidfd until the `AsyncFd` is dropped; `OwnedFd::as_raw_fd` always returns that fd.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    };
    Ok(registered?)
}
