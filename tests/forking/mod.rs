//! Forking helpers shared by the fork tests (`fork_safety.rs`, `changefeed_fork.rs`): run
//! a closure in a bare `fork(2)` child and wait for it with a deadline.

use std::io;
use std::time::{Duration, Instant};

/// Runs `f` in a forked child, which exits with its result (panics: 100).
pub fn fork_child(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child only runs `f` (ledger calls, no stdout) and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(100);
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// The child's exit code, or None if it had not exited by `deadline` (then it is killed).
pub fn wait_for(pid: libc::pid_t, deadline: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: plain system calls on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
        if start.elapsed() > deadline {
            // SAFETY: as above.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
