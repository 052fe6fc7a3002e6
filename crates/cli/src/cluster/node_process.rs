//! The processes of a local cluster's nodes as `runnel cluster down` finds them:
//! pid files, whether a pid is still a `runnel server`, and signals.
//!
//! A pid file outlives its process (a crash, a reboot) and the kernel reuses
//! pids, so a pid is only trusted while `/proc/<pid>/cmdline` still shows a
//! `runnel server`; anything else is a stale file, removed without a signal.

use std::fs;
use std::io;
use std::path::Path;

use anyhow::Context;
use rustix::process::{kill_process, Pid, Signal};

/// What a node's pid file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidFile {
    /// There is none: the node was never started or was stopped cleanly.
    Missing,
    /// It names no live `runnel server` (garbage, an exited process, a reused pid).
    Stale,
    /// It names this live `runnel server` process.
    Running(u32),
}

/// Reads the pid file at `path` and checks the process it names.
pub fn read_pid_file(path: &Path) -> anyhow::Result<PidFile> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PidFile::Missing),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(match text.trim().parse::<u32>() {
        Ok(pid) if pid > 0 && is_runnel_server(pid) => PidFile::Running(pid),
        _ => PidFile::Stale,
    })
}

/// Writes `pid` to `path`.
pub fn write_pid_file(path: &Path, pid: u32) -> anyhow::Result<()> {
    fs::write(path, format!("{pid}\n")).with_context(|| format!("cannot write {}", path.display()))
}

/// Removes the pid file at `path`; one already gone is fine.
pub fn remove_pid_file(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Whether `pid` is a live process (a zombie, dead but not yet reaped, is not).
pub fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "<pid> (<comm>) <state> ...": comm may hold spaces and parentheses,
        // so the state is found after the last ')'.
        Ok(stat) => match stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next())
        {
            Some('Z' | 'X' | 'x') => false,
            Some(_) => true,
            None => false,
        },
        Err(_) => false,
    }
}

/// Whether `pid` is a live `runnel server`.
pub fn is_runnel_server(pid: u32) -> bool {
    is_alive(pid)
        && fs::read(format!("/proc/{pid}/cmdline"))
            .map(|cmdline| cmdline_is_runnel_server(&cmdline))
            .unwrap_or(false)
}

/// Whether a NUL-separated command line runs `runnel server`: a program whose
/// file name contains "runnel" given the argument "server".
pub fn cmdline_is_runnel_server(cmdline: &[u8]) -> bool {
    let mut args = cmdline.split(|&b| b == 0).filter(|a| !a.is_empty());
    let Some(program) = args.next() else {
        return false;
    };
    let name = program.rsplit(|&b| b == b'/').next().unwrap_or(program);
    name.windows(6).any(|w| w == b"runnel") && args.any(|a| a == b"server")
}

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub fn signal(pid: u32, signal: Signal) -> anyhow::Result<()> {
    let raw = i32::try_from(pid).with_context(|| format!("pid {pid} out of range"))?;
    let target = Pid::from_raw(raw).with_context(|| format!("invalid pid {pid}"))?;
    match kill_process(target, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot signal process {pid}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_runnel_server_command_lines_match() {
        assert!(cmdline_is_runnel_server(
            b"/usr/bin/runnel\0server\0--data-dir\0x\0"
        ));
        assert!(cmdline_is_runnel_server(b"runnel\0server\0"));
        assert!(!cmdline_is_runnel_server(
            b"/usr/bin/runnel\0topics\0list\0"
        ));
        assert!(!cmdline_is_runnel_server(b"sleep\0server\0"));
        // "runnel" in a directory name is not the program.
        assert!(!cmdline_is_runnel_server(b"/opt/runnel/bin/java\0server\0"));
        assert!(!cmdline_is_runnel_server(b""));
    }

    #[test]
    fn a_pid_file_of_an_exited_process_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.pid");
        assert_eq!(read_pid_file(&path).unwrap(), PidFile::Missing);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        write_pid_file(&path, pid).unwrap();
        assert_eq!(read_pid_file(&path).unwrap(), PidFile::Stale);
        fs::write(&path, "not a pid").unwrap();
        assert_eq!(read_pid_file(&path).unwrap(), PidFile::Stale);
        remove_pid_file(&path).unwrap();
        remove_pid_file(&path).unwrap();
        assert_eq!(read_pid_file(&path).unwrap(), PidFile::Missing);
    }

    #[test]
    fn a_live_process_that_is_not_runnel_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.pid");
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        write_pid_file(&path, sleeper.id()).unwrap();
        let alive = is_alive(sleeper.id());
        let state = read_pid_file(&path).unwrap();
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert!(alive);
        assert_eq!(state, PidFile::Stale);
    }
}
