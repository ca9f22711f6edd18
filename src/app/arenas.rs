//! Bounded malloc arenas for the gateway. glibc gives threads that allocate at the same time
//! arenas of their own, up to eight per core; framegate runs a couple of hundred threads
//! (GStreamer's streaming threads, several per stream), and memory freed in one arena is
//! seldom given back while another thread's arena grows. The resident size then creeps with
//! every reconnection and viewer although nothing leaks: 50 camera kills took a stream from 89
//! to 108 MB with glibc's default, from 89 to 90 MB with two arenas (docs/reliability.md).
//!
//! glibc reads `MALLOC_ARENA_MAX` once, when the process starts, so `framegate run` starts
//! itself again (the same process: `exec`) with it set, unless it is set already: a deployment
//! that wants another value sets its own.

use std::os::unix::process::CommandExt;

/// Arenas for the gateway: two, as long-running many-threaded servers commonly use.
pub const ARENAS: &str = "2";

/// If this is `framegate run` and `MALLOC_ARENA_MAX` is not set, replaces the process with
/// itself with the variable set; returns only when it did not (another command, the variable
/// set, or `exec` failed, in which case the gateway runs as it is and says why).
pub fn bound_malloc_arenas() {
    let mut args = std::env::args_os();
    let _program = args.next();
    if args.next().is_none_or(|c| c != "run") || std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", ARENAS)
        .exec();
    // Before logging is set up: a plain line on stderr.
    eprintln!("framegate: running with glibc's default malloc arenas ({err})");
}
