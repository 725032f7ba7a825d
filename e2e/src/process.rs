//! Child processes that never outlive their parent.

use std::process::Command;

/// Makes the child receive SIGKILL when the thread that spawned it dies, so that a crashed or killed parent
/// leaves no process behind. Spawn from a thread that lives as long as the child should (the supervisor uses a
/// current-thread runtime, so that is its main thread).
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls prctl and getppid, both
    // async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would ever send the signal.
            if libc::getppid() == 1 {
                return Err(std::io::Error::other("parent died before the child started"));
            }
            Ok(())
        });
    }
}

/// Whether `pid` exists and is not a zombie (a zombie has released everything and only waits to be reaped).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}
