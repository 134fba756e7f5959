//! Running commands with errors that name the command and carry its stderr,
//! and child processes that are killed when their guard is dropped.

use std::{
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{Error, Result};

/// Fails with [`Error::NotRoot`] unless the process runs as root.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        Ok(())
    } else {
        Err(Error::NotRoot { uid })
    }
}

/// Whether `tool` is an executable on PATH (or an absolute path to one).
pub fn have_tool(tool: &str) -> bool {
    find_tool(tool).is_some()
}

/// Full path of `tool` on PATH.
pub fn find_tool(tool: &str) -> Option<std::path::PathBuf> {
    if tool.contains('/') {
        return Path::new(tool).is_file().then(|| tool.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Fails with [`Error::Missing`] unless `tool` is installed.
pub fn require_tool(tool: &str, package: &str) -> Result<()> {
    if have_tool(tool) {
        Ok(())
    } else {
        Err(Error::Missing {
            tool: tool.into(),
            hint: format!("install the Debian package `{package}` (apt-get install {package}), or run bench/install-deps.sh"),
        })
    }
}

/// The command line as a shell user would type it (for error messages).
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            s.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Runs `cmd` to completion and returns its output whatever the exit status.
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            cmd: describe(cmd),
            source,
        })
}

/// Runs `cmd` to completion; fails with its stderr unless it exits 0.
/// Returns its stdout.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            cmd: describe(cmd),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        })
    }
}

/// `run` for a program and its arguments.
pub fn run_argv(prog: &str, args: &[&str]) -> Result<String> {
    run(Command::new(prog).args(args))
}

/// A running child process (in its own process group) that is stopped when
/// the guard is dropped: SIGTERM to the whole group, then SIGKILL if it has
/// not exited within a grace period.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    desc: String,
}

impl ChildGuard {
    /// Starts `cmd` in a new process group. Its stdout and stderr go to the
    /// given files or are discarded.
    pub fn spawn(mut cmd: Command) -> Result<ChildGuard> {
        cmd.process_group(0).stdin(Stdio::null());
        let desc = describe(&cmd);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            cmd: desc.clone(),
            source,
        })?;
        Ok(ChildGuard {
            child: Some(child),
            desc,
        })
    }

    /// The child's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The command line it runs.
    pub fn command_line(&self) -> &str {
        &self.desc
    }

    /// `Ok(None)` while running, `Ok(Some(status))` once it has exited.
    pub fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => c
                .try_wait()
                .map_err(|e| Error::io(format!("waiting for `{}`", self.desc), e)),
            None => Ok(None),
        }
    }

    /// Fails if the child has already exited (with its status in the error).
    pub fn check_running(&mut self) -> Result<()> {
        match self.try_wait()? {
            None => Ok(()),
            Some(status) => Err(Error::Command {
                cmd: self.desc.clone(),
                status: format!("exited early: {status}"),
                stderr: String::new(),
                stdout: String::new(),
            }),
        }
    }

    /// Stops the process group now (what drop does).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as libc::pid_t;
        if let Ok(None) = child.try_wait() {
            // SAFETY: kill(2) with a negative pid signals a process group;
            // the group is the one this guard created.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        // Whatever is left of the group (workers of a master that already
        // exited included) is killed outright.
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `f` until it returns `Ok`, or fails with [`Error::Timeout`] carrying
/// the last error.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let start = Instant::now();
    let mut last;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) => last = e.to_string(),
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: what.into(),
                secs: start.elapsed().as_secs_f64(),
                last: Some(last),
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
}
