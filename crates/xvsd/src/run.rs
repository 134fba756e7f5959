//! Start-up, the listeners, the timer, signals and shutdown.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use xvs_datapath::{Datapath, EventKind, Events, LoadOptions, XdpMode};

use crate::api::{self, Access};
use crate::daemon::{Attached, Daemon};
use crate::{log, Args, AttachMode};

/// Enters network namespace `/run/netns/NAME` (as `ip netns exec` does, but
/// without remounting /sys, so the pinned state stays on the host's bpffs).
fn enter_netns(name: &str) -> Result<(), String> {
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).map_err(|e| format!("network namespace {path}: {e}"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: f is an open netns file; setns changes this thread's (and,
    // before any other thread exists, the process's) network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!(
            "entering network namespace {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

struct Paths {
    socket: PathBuf,
    pin_dir: PathBuf,
    state_dir: PathBuf,
}

fn paths(args: &Args) -> Paths {
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/run/xvs/{}", args.name)));
    let socket = args.socket.clone().unwrap_or_else(|| {
        if args.name == "default" {
            PathBuf::from(xvs_api::DEFAULT_SOCKET)
        } else {
            state_dir.join("xvsd.sock")
        }
    });
    let pin_dir = args
        .pin_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/sys/fs/bpf/xvs/{}", args.name)));
    Paths {
        socket,
        pin_dir,
        state_dir,
    }
}

/// Whether `dev` is a virtual device (no `device` link in sysfs: veth,
/// bridge, dummy...), where tc is the right hook.
fn is_virtual(dev: &str) -> bool {
    !Path::new(&format!("/sys/class/net/{dev}/device")).exists()
}

fn attach(d: &mut Daemon, name: &str, mode: AttachMode) -> Result<(), String> {
    let mode = match mode {
        AttachMode::Auto if is_virtual(name) => AttachMode::Tc,
        AttachMode::Auto => AttachMode::Xdp,
        m => m,
    };
    let (label, res) = match mode {
        AttachMode::Tc => ("tc", d.dp.attach_pinned_tc(name)),
        AttachMode::XdpGeneric => ("xdp-generic", d.dp.attach_pinned_xdp(name, XdpMode::Skb)),
        _ => ("xdp", d.dp.attach_pinned_xdp(name, XdpMode::Driver)),
    };
    record(d, name, label, res)?;
    // XDP cannot resolve a missing neighbour entry: it hands such packets,
    // rewritten, to xvs_tc on the same device, which sends them with
    // bpf_redirect_neigh. So XDP always comes with tc behind it.
    if label != "tc" {
        let res = d.dp.attach_pinned_tc(name);
        record(d, name, "tc", res)?;
    }
    Ok(())
}

/// Logs an attachment and remembers it.
fn record(
    d: &mut Daemon,
    name: &str,
    label: &'static str,
    res: xvs_datapath::Result<xvs_datapath::PinnedAttachment>,
) -> Result<(), String> {
    let a = res.map_err(|e| format!("attaching to {name} ({label}): {e}"))?;
    log::info(
        if a.replaced {
            "took over the previous run's attachment"
        } else {
            "attached"
        },
        &[
            ("interface", json!(name)),
            ("mode", json!(label)),
            ("prog_id", json!(a.prog_id)),
        ],
    );
    d.attached.push(Attached {
        name: name.to_string(),
        mode: label,
        hook: a.hook,
        ifindex: a.ifindex,
    });
    Ok(())
}

/// Binds the API socket, refusing to steal one a live xvsd answers on.
fn bind_socket(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another xvsd is already serving {} (give this one another --name or --socket)",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path).map_err(|e| format!("binding {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    Ok(l)
}

fn read_rules(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

pub fn run(args: Args) -> Result<(), String> {
    if let Some(ns) = &args.netns {
        enter_netns(ns)?;
    }
    let p = paths(&args);
    if args.cleanup {
        return cleanup(&p);
    }
    // The socket first: a second xvsd on it is refused before it touches
    // anything.
    let listener = bind_socket(&p.socket)?;
    std::fs::create_dir_all(&p.state_dir)
        .map_err(|e| format!("creating {}: {e}", p.state_dir.display()))?;

    let mut opts = LoadOptions {
        pin_dir: Some(p.pin_dir.clone()),
        ..LoadOptions::default()
    };
    if let Some(n) = args.max_conns {
        opts.max_conns = n;
    }
    if let Some(n) = args.flow_cache {
        opts.flow_cache = n;
    }
    let mut dp = Datapath::load_with(opts).map_err(|e| format!("loading the datapath: {e}"))?;
    let events = dp
        .take_events()
        .map_err(|e| format!("the datapath's events: {e}"))?;
    let adopted = dp.adopted();
    let rules_file = p.state_dir.join("rules");
    let mut d = Daemon::new(
        args.name.clone(),
        dp,
        p.pin_dir.clone(),
        adopted,
        rules_file.clone(),
    );
    d.sysctls = args.sysctls;

    // The rules: the config file if given, else what the last run saved.
    let initial = match &args.config {
        Some(f) => Some((f.clone(), read_rules(f)?)),
        None if rules_file.exists() => Some((rules_file.clone(), read_rules(&rules_file)?)),
        None => None,
    };
    match initial {
        Some((file, text)) => d.replace_rules(&text).map_err(|(_, e)| {
            format!("rules in {}: {} ({})", file.display(), e.message, e.detail)
        })?,
        // Adopted maps without saved rules: the table cannot be rebuilt
        // from the maps, so they keep forwarding with their old rules until
        // the first command replaces them.
        None if adopted => log::warn(
            "adopted a datapath but found no saved rules",
            &[("rules_file", json!(rules_file.display().to_string()))],
        ),
        None => {}
    }
    for (name, mode) in &args.ifaces {
        attach(&mut d, name, *mode)?;
    }
    // Attachments of the previous run on interfaces not asked for this time.
    let stale: Vec<_> =
        d.dp.pinned_attachments()
            .map_err(|e| format!("listing pinned attachments: {e}"))?
            .into_iter()
            .filter(|a| {
                !d.attached
                    .iter()
                    .any(|x| x.ifindex == a.ifindex && x.hook == a.hook)
            })
            .collect();
    for a in stale {
        let fields = [
            ("ifindex", json!(a.ifindex)),
            ("hook", json!(format!("{:?}", a.hook))),
        ];
        match d.dp.detach_pinned(a.ifindex, a.hook) {
            Ok(_) => log::info(
                "detached a previous run's attachment not asked for now",
                &fields,
            ),
            Err(e) => log::warn(
                &format!("detaching a previous run's attachment: {e}"),
                &fields,
            ),
        }
    }
    log::info(
        "xvsd started",
        &[
            ("name", json!(args.name)),
            ("socket", json!(p.socket.display().to_string())),
            ("pin_dir", json!(p.pin_dir.display().to_string())),
            ("adopted", json!(adopted)),
            ("services", json!(d.table.len())),
            (
                "sysctls",
                json!(d
                    .sysctls
                    .values()
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v)))
                    .collect::<serde_json::Map<_, _>>()),
            ),
        ],
    );

    let state = Arc::new(Mutex::new(d));
    let stop = Arc::new(AtomicBool::new(false));

    {
        let state = state.clone();
        std::thread::Builder::new()
            .name("api-unix".into())
            .spawn(move || {
                for s in listener.incoming().flatten() {
                    let state = state.clone();
                    std::thread::spawn(move || api::serve(&state, &Access::Local, s));
                }
            })
            .map_err(|e| e.to_string())?;
    }
    if let Some(addr) = args.http {
        let token = match &args.http_token_file {
            Some(f) => Some(read_rules(f)?.trim().to_string()),
            None => None,
        };
        let l = std::net::TcpListener::bind(addr).map_err(|e| format!("binding {addr}: {e}"))?;
        log::info("serving HTTP", &[("address", json!(addr.to_string()))]);
        let state = state.clone();
        std::thread::Builder::new()
            .name("api-http".into())
            .spawn(move || {
                let access = Access::Tcp { token };
                for s in l.incoming().flatten() {
                    let state = state.clone();
                    let access = access.clone();
                    std::thread::spawn(move || api::serve(&state, &access, s));
                }
            })
            .map_err(|e| e.to_string())?;
    }
    {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || log_events(events, &stop))
            .map_err(|e| e.to_string())?;
    }
    {
        let state = state.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("timer".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(1));
                    state.lock().unwrap_or_else(|p| p.into_inner()).tick();
                }
            })
            .map_err(|e| e.to_string())?;
    }

    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(|e| e.to_string())?;
    for sig in signals.forever() {
        if sig == SIGHUP {
            reload(&state, &args, &rules_file);
            continue;
        }
        log::info("stopping", &[("signal", json!(sig))]);
        break;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = std::fs::remove_file(&p.socket);
    let mut d = state.lock().unwrap_or_else(|e| e.into_inner());
    if args.detach_on_exit {
        if let Err(e) = d.dp.detach_all() {
            log::warn("detaching", &[("error", json!(e.to_string()))]);
        }
        if let Err(e) = xvs_datapath::unpin_dir(&p.pin_dir) {
            log::warn(
                "removing the pinned state",
                &[("error", json!(e.to_string()))],
            );
        }
        let _ = std::fs::remove_dir_all(&p.state_dir);
        log::info("detached and cleaned up", &[]);
    } else {
        log::info(
            "the datapath keeps forwarding; the next xvsd with this --name takes it over",
            &[("pin_dir", json!(p.pin_dir.display().to_string()))],
        );
    }
    log::info("xvsd stopped", &[]);
    Ok(())
}

/// Logs the datapath's events as the kernel's IPVS logs them (a warning
/// each, already rate-limited by the datapath), until `stop`.
fn log_events(mut events: Events, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = events.wait(Duration::from_secs(1)) {
            log::error(
                "reading the datapath's events",
                &[("error", json!(e.to_string()))],
            );
            return;
        }
        while let Some(e) = events.next_event() {
            log::warn(
                &e.to_string(),
                &[
                    (
                        "event",
                        json!(match e.kind {
                            EventKind::NoDestination => "no_destination",
                        }),
                    ),
                    ("service", json!(e.service_name())),
                    ("scheduler", json!(e.scheduler.map(|s| s.name()))),
                    ("suppressed", json!(e.suppressed)),
                ],
            );
        }
    }
}

/// SIGHUP: reload the config file; a bad one keeps the running rules.
fn reload(state: &Mutex<Daemon>, args: &Args, _rules_file: &Path) {
    let Some(f) = &args.config else {
        log::info("SIGHUP without -f: nothing to reload", &[]);
        return;
    };
    let text = match read_rules(f) {
        Ok(t) => t,
        Err(e) => {
            log::error(
                "reload failed; keeping the running rules",
                &[("error", json!(e))],
            );
            return;
        }
    };
    let mut d = state.lock().unwrap_or_else(|p| p.into_inner());
    match d.replace_rules(&text) {
        Ok(()) => log::info("reloaded", &[("file", json!(f.display().to_string()))]),
        Err((_, e)) => log::error(
            "reload failed; keeping the running rules",
            &[
                ("file", json!(f.display().to_string())),
                ("error", json!(e.message)),
                ("detail", json!(e.detail)),
            ],
        ),
    }
}

fn cleanup(p: &Paths) -> Result<(), String> {
    if p.socket.exists() && UnixStream::connect(&p.socket).is_ok() {
        return Err(format!(
            "xvsd is running on {}: stop it first",
            p.socket.display()
        ));
    }
    xvs_datapath::unpin_dir(&p.pin_dir)
        .map_err(|e| format!("removing {}: {e}", p.pin_dir.display()))?;
    let _ = std::fs::remove_dir_all(&p.state_dir);
    log::info(
        "cleaned up",
        &[
            ("pin_dir", json!(p.pin_dir.display().to_string())),
            ("state_dir", json!(p.state_dir.display().to_string())),
        ],
    );
    Ok(())
}
