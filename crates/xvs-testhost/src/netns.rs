//! Named network namespaces (`ip netns`), deleted on drop, and a sweep of
//! the ones left behind by runs that were killed.

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::Path,
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
};

use crate::{
    cmd::{self, ChildGuard},
    Error, Result,
};

/// A network namespace made with `ip netns add`. Dropping it kills every
/// process still inside it and deletes it (its veths go with it).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `{prefix}-{pid}-{seq}`.
/// [`sweep_stale`] recognises the pid in it.
pub fn unique_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl Netns {
    /// Creates namespace `name` with its loopback up.
    pub fn create(name: &str) -> Result<Netns> {
        cmd::require_root()?;
        cmd::require_tool("ip", "iproute2")?;
        cmd::run_argv("ip", &["netns", "add", name])?;
        let ns = Netns { name: name.into() };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name (as `ip netns list` shows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` that runs `prog` inside the namespace
    /// (`ip netns exec NAME prog`); add arguments and run it yourself.
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Runs `argv` inside the namespace; fails (with the command and its
    /// stderr) unless it exits 0. Returns stdout.
    pub fn exec(&self, argv: &[&str]) -> Result<String> {
        let (prog, args) = split(argv)?;
        cmd::run(self.command(prog).args(args))
    }

    /// Runs `argv` inside the namespace and returns its output whatever
    /// its exit status.
    pub fn exec_output(&self, argv: &[&str]) -> Result<Output> {
        let (prog, args) = split(argv)?;
        cmd::output(self.command(prog).args(args))
    }

    /// Starts `argv` inside the namespace in the background; the process
    /// (and its process group) is stopped when the guard is dropped.
    /// Its stdout and stderr are discarded; use [`Netns::spawn_logged`] to
    /// keep them.
    pub fn spawn(&self, argv: &[&str]) -> Result<ChildGuard> {
        let (prog, args) = split(argv)?;
        let mut c = self.command(prog);
        c.args(args).stdout(Stdio::null()).stderr(Stdio::null());
        ChildGuard::spawn(c)
    }

    /// Like [`Netns::spawn`], with stdout and stderr appended to `log`.
    pub fn spawn_logged(&self, argv: &[&str], log: &Path) -> Result<ChildGuard> {
        let (prog, args) = split(argv)?;
        let f = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
        let f2 = f
            .try_clone()
            .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
        let mut c = self.command(prog);
        c.args(args).stdout(f).stderr(f2);
        ChildGuard::spawn(c)
    }

    /// `ip -n NAME args...`
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ip");
        c.args(["-n", &self.name]).args(args);
        cmd::run(&mut c)
    }

    /// Sets one sysctl inside the namespace (`net.ipv4.ip_forward`, `1`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec(&["sysctl", "-qw", &format!("{key}={value}")])
            .map(|_| ())
    }

    /// Sets several sysctls, in order.
    pub fn sysctls(&self, settings: &[(&str, &str)]) -> Result<()> {
        settings.iter().try_for_each(|(k, v)| self.sysctl(k, v))
    }

    /// Reads one sysctl inside the namespace.
    pub fn get_sysctl(&self, key: &str) -> Result<String> {
        Ok(self.exec(&["sysctl", "-n", key])?.trim().to_string())
    }

    /// Pids of every process inside the namespace (`ip netns pids`).
    pub fn pids(&self) -> Result<Vec<u32>> {
        Ok(cmd::run_argv("ip", &["netns", "pids", &self.name])?
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    /// Runs `f` on a new thread that has entered this namespace, so the
    /// sockets, netlink requests and interface names used by `f` are this
    /// namespace's (for loading BPF programs or opening sockets in-process).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        let fd = File::open(&path).map_err(|e| Error::io(format!("opening {path}"), e))?;
        thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: fd is an open netns file; setns only affects this
                // fresh thread, which ends when `f` returns.
                let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(Error::io(
                        format!("setns into {path}"),
                        std::io::Error::last_os_error(),
                    ));
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_netns(&self.name);
    }
}

fn split<'a>(argv: &'a [&'a str]) -> Result<(&'a str, &'a [&'a str])> {
    argv.split_first()
        .map(|(p, a)| (*p, a))
        .ok_or_else(|| Error::Invalid("empty command".into()))
}

/// Kills every process inside namespace `name` and deletes it. Errors are
/// ignored (it may already be gone).
fn delete_netns(name: &str) {
    for _ in 0..3 {
        let pids = Command::new("ip")
            .args(["netns", "pids", name])
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let pids: Vec<i32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: kill(2) on a pid that `ip netns pids` reported as
            // living in our own test namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stderr(Stdio::null())
        .status();
}

/// Namespaces whose names start with `{prefix}-` (from `ip netns list`).
pub fn list_with_prefix(prefix: &str) -> Result<Vec<String>> {
    let out = cmd::run_argv("ip", &["netns", "list"])?;
    let want = format!("{prefix}-");
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&want))
        .map(String::from)
        .collect())
}

/// The pid embedded in a name made by [`unique_id`] (`{prefix}-{pid}-...`).
pub fn owner_pid(prefix: &str, name: &str) -> Option<u32> {
    name.strip_prefix(prefix)?
        .strip_prefix('-')?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Deletes the namespaces named `{prefix}-{pid}-...` whose pid is no longer
/// alive (left by killed runs), killing any process still in them.
/// Returns the names deleted.
pub fn sweep_stale(prefix: &str) -> Result<Vec<String>> {
    cmd::require_root()?;
    let mut gone = Vec::new();
    for name in list_with_prefix(prefix)? {
        let stale = match owner_pid(prefix, &name) {
            Some(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
            None => false,
        };
        if stale {
            delete_netns(&name);
            gone.push(name);
        }
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_read_from_unique_names() {
        assert_eq!(owner_pid("xvs-th", "xvs-th-1234-0-client"), Some(1234));
        assert_eq!(owner_pid("xvs-th", "xvs-th-99-7-rs2"), Some(99));
        assert_eq!(owner_pid("xvs-th", "xvs-thx-99-7-rs2"), None);
        assert_eq!(owner_pid("xvs-th", "other-99"), None);
        assert_eq!(owner_pid("xvs-th", "xvs-th-abc-1"), None);
    }

    #[test]
    fn unique_ids_differ() {
        let a = unique_id("p");
        let b = unique_id("p");
        assert_ne!(a, b);
        assert_eq!(owner_pid("p", &a), Some(std::process::id()));
    }
}
