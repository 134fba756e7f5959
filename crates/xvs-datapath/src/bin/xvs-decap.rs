//! `xvs-decap`: installs the xvs LVS-TUN decapsulation program on a real
//! server's interface, persistently (pinned on bpffs), and removes it.
//!
//! ```text
//! xvs-decap attach IFACE [--tc | --xdp | --xdp-generic] [--gue-port N] [--addr IP]... [--bpffs DIR]
//! xvs-decap detach IFACE [--bpffs DIR]
//! xvs-decap status IFACE [--bpffs DIR]
//! ```
//!
//! Without `--addr`, the accepted outer destinations are the addresses
//! IFACE has now. The program stays attached after the command exits, until
//! `detach`. Names are resolved in the caller's network namespace.

use std::{
    ffi::CStr,
    net::IpAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use xvs_datapath::decap::{self, Decap, XdpMode};

const USAGE: &str = "\
usage: xvs-decap attach IFACE [--tc | --xdp | --xdp-generic] [--gue-port N] [--addr IP]... [--bpffs DIR]
       xvs-decap detach IFACE [--bpffs DIR]
       xvs-decap status IFACE [--bpffs DIR]

Strips IPIP and GUE (UDP port N) encapsulation from packets to this host's
addresses (LVS-TUN real server), without the ipip/fou kernel modules.
  --tc            tc ingress (default; right for veth and containers)
  --xdp           XDP, native driver mode
  --xdp-generic   XDP, generic (skb) mode
  --gue-port N    also decapsulate GUE sent to UDP port N (ipvsadm --tun-port)
  --addr IP       accept tunnels to IP (repeatable; default: IFACE's addresses)
  --bpffs DIR     bpffs mount to pin on (default /sys/fs/bpf; mounted if missing)";

#[derive(Debug, PartialEq)]
enum Mode {
    Tc,
    Xdp(XdpMode),
}

struct Args {
    cmd: String,
    iface: String,
    mode: Mode,
    gue_port: Option<u16>,
    addrs: Vec<IpAddr>,
    bpffs: PathBuf,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let cmd = it.next().ok_or("missing command")?;
    if !matches!(cmd.as_str(), "attach" | "detach" | "status") {
        return Err(format!("unknown command {cmd:?}"));
    }
    let iface = it.next().ok_or("missing interface")?;
    let mut a = Args {
        cmd,
        iface,
        mode: Mode::Tc,
        gue_port: None,
        addrs: Vec::new(),
        bpffs: PathBuf::from("/sys/fs/bpf"),
    };
    while let Some(opt) = it.next() {
        let mut value = || it.next().ok_or(format!("{opt} needs a value"));
        match opt.as_str() {
            "--tc" => a.mode = Mode::Tc,
            "--xdp" => a.mode = Mode::Xdp(XdpMode::Driver),
            "--xdp-generic" => a.mode = Mode::Xdp(XdpMode::Skb),
            "--gue-port" => {
                let v = value()?;
                let p: u16 = v.parse().map_err(|_| format!("bad port {v:?}"))?;
                if p == 0 {
                    return Err("--gue-port must be 1..65535".into());
                }
                a.gue_port = Some(p);
            }
            "--addr" => {
                let v = value()?;
                a.addrs
                    .push(v.parse().map_err(|_| format!("bad address {v:?}"))?);
            }
            "--bpffs" => a.bpffs = PathBuf::from(value()?),
            _ => return Err(format!("unknown option {opt:?}")),
        }
    }
    if a.cmd != "attach" && (a.mode != Mode::Tc || a.gue_port.is_some() || !a.addrs.is_empty()) {
        return Err(format!("{} takes only --bpffs", a.cmd));
    }
    Ok(a)
}

/// The IPv4 and IPv6 addresses `iface` has (calling thread's netns).
fn iface_addrs(iface: &str) -> std::io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills head with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: p is a node of the list getifaddrs returned.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        if name.to_bytes() != iface.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr of the family it says.
        unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    out.push(IpAddr::from(
                        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                    ));
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                }
                _ => {}
            }
        }
    }
    // SAFETY: head came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

fn attach(a: &Args, dir: &Path) -> Result<(), String> {
    if decap::is_pinned(dir) {
        return Err(format!(
            "already attached to {} (pinned at {}); run `xvs-decap detach {}` first",
            a.iface,
            dir.display(),
            a.iface
        ));
    }
    let addrs = if a.addrs.is_empty() {
        let v = iface_addrs(&a.iface).map_err(|e| format!("addresses of {}: {e}", a.iface))?;
        if v.is_empty() {
            return Err(format!(
                "{} has no IP address; give the real server's address with --addr",
                a.iface
            ));
        }
        v
    } else {
        a.addrs.clone()
    };
    let mut d = Decap::load().map_err(|e| e.to_string())?;
    for ip in &addrs {
        d.add_address(*ip).map_err(|e| e.to_string())?;
    }
    d.set_gue_port(a.gue_port).map_err(|e| e.to_string())?;
    let att = match a.mode {
        Mode::Tc => d.attach_tc(&a.iface),
        Mode::Xdp(m) => d.attach_xdp(&a.iface, m),
    }
    .map_err(|e| e.to_string())?;
    if let Err(e) = d.pin(att, dir) {
        let _ = decap::unpin(dir);
        return Err(e.to_string());
    }
    let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    println!(
        "xvs-decap: attached ({}) to {}: IPIP{} to {}; pinned at {}",
        match a.mode {
            Mode::Tc => "tc ingress".to_string(),
            Mode::Xdp(m) => format!("XDP {m:?}"),
        },
        a.iface,
        a.gue_port
            .map(|p| format!(" and GUE port {p}"))
            .unwrap_or_default(),
        addrs.join(", "),
        dir.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xvs-decap: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = (|| -> Result<(), String> {
        decap::ensure_bpffs(&args.bpffs).map_err(|e| e.to_string())?;
        let dir = decap::pin_dir(&args.bpffs, &args.iface).map_err(|e| e.to_string())?;
        match args.cmd.as_str() {
            "attach" => attach(&args, &dir),
            "detach" => {
                if !decap::is_pinned(&dir) {
                    return Err(format!(
                        "not attached to {} (no {})",
                        args.iface,
                        dir.display()
                    ));
                }
                decap::unpin(&dir).map_err(|e| e.to_string())?;
                // Tidy up empty parents; they may be shared, so ignore errors.
                if let Some(p) = dir.parent() {
                    let _ = std::fs::remove_dir(p);
                    if let Some(pp) = p.parent() {
                        let _ = std::fs::remove_dir(pp);
                    }
                }
                println!("xvs-decap: detached from {}", args.iface);
                Ok(())
            }
            _ => {
                if !decap::is_pinned(&dir) {
                    return Err(format!("not attached to {}", args.iface));
                }
                let c = decap::pinned_counters(&dir).map_err(|e| e.to_string())?;
                println!(
                    "passed {}\nipip {}\ngue {}\nmalformed {}\nerror {}",
                    c.passed, c.ipip, c.gue, c.malformed, c.error
                );
                Ok(())
            }
        }
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvs-decap: {e}");
            ExitCode::FAILURE
        }
    }
}
