//! Zero-drop restart of the daemon: the datapath is loaded with a pin
//! directory, attached with pinned links and synced; wrk runs keep-alive
//! load through it; the `Datapath` is dropped without detaching (what an
//! exiting or upgrading xvsd does), a new one is loaded from the same
//! directory, synced from a freshly rebuilt table whose real servers have
//! other `DestId`s, and takes the attachments over (atomic program
//! replacement). wrk must see no error at all, and the connection counts
//! the new datapath reports must be those of the live connections.
//!
//! LVS-NAT (tcx links on `d0` and `d1`) and LVS-DR (a native XDP link on
//! `d0`), on the xvs-testhost labs (`labs_common`, namespaces
//! `xvs-lab-<pid>-<n>-<role>`, 198.18.0.0/15). Pin directories
//! `/sys/fs/bpf/xvs-restart-<pid>-<n>`, removed by a guard. Needs root.

mod labs_common;

use std::{
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use labs_common::{load_pinned, Attach, Hops, Lab};
use xvs_core::{model::DestId, table::IpvsTable};
use xvs_datapath::{Hook, Prog};
use xvs_testhost::netns::unique_id;

/// Detaches and removes what is pinned in the directory when dropped (the
/// test's clean stop does it first; this is for a failing test).
struct PinDir(PathBuf);

impl PinDir {
    fn new() -> PinDir {
        labs_common::require_root();
        xvs_datapath::ensure_bpffs().expect("bpffs at /sys/fs/bpf");
        PinDir(Path::new(xvs_datapath::pin::BPFFS).join(unique_id("xvs-restart")))
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = xvs_datapath::unpin_dir(&self.0);
    }
}

/// The lab's rules: `-s rr` over the two real servers, NAT or DR. With
/// `shift`, a dummy real server is added and deleted first, so the two get
/// other `DestId`s (as after a daemon restart that rebuilt its table from
/// saved rules in another order).
fn rules(lab: &Lab, nat: bool, shift: bool) -> IpvsTable {
    let fwd = if nat { "-m" } else { "-g" };
    let vip = lab.vip();
    let mut lines = vec![format!("-A -t {vip}:80 -s rr")];
    if shift {
        lines.push(format!("-a -t {vip}:80 -r 198.19.255.254:80 {fwd}"));
        lines.push(format!("-d -t {vip}:80 -r 198.19.255.254:80"));
    }
    for i in 0..2 {
        lines.push(format!("-a -t {vip}:80 -r {}:80 {fwd}", lab.rs(i)));
    }
    let mut t = IpvsTable::new();
    for l in &lines {
        let words: Vec<&str> = l.split_whitespace().collect();
        let cmd = xvs_core::ipvsadm::parse::parse_args(&words, &xvs_core::ipvsadm::NumericOnly)
            .unwrap_or_else(|e| panic!("{l}: {e}"));
        t.apply(&cmd).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    t
}

/// Established TCP connections from the client to VIP:80, as its kernel
/// sees them.
fn live_conns(lab: &Lab) -> usize {
    let dst = format!("{}:80", lab.vip());
    lab.topo
        .client()
        .exec(&["ss", "-Htn", "state", "established", "dst", &dst])
        .unwrap_or_else(|e| panic!("ss in the client: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Per real server (in address order): (ActiveConn, InActConn, Conns,
/// InPkts) from the datapath's `snapshot`.
fn snapshot(lab: &Lab) -> Vec<(u32, u32, u64, u64)> {
    let snap = lab.dp.snapshot(&lab.table).expect("snapshot");
    let mut v: Vec<_> = snap.services[0]
        .dests
        .iter()
        .map(|d| {
            (
                d.cfg.addr,
                (d.active_conns, d.inact_conns, d.stats.conns, d.stats.inpkts),
            )
        })
        .collect();
    v.sort_by_key(|(a, _)| *a);
    v.into_iter().map(|(_, c)| c).collect()
}

fn restart_under_load(nat: bool, attach: Attach) {
    let dir = PinDir::new();
    let mut lab = if nat {
        Lab::nat_with(2, true, Hops::Fib, Attach::Tc, Some(&dir.0))
    } else {
        Lab::dr_with(2, attach, Hops::Fib, Some(&dir.0))
    };
    lab.table = rules(&lab, nat, false);
    lab.sync();
    let old_ids: Vec<DestId> = (0..2).map(|i| lab.dest(i)).collect();
    let old_progs = (
        lab.dp.program_id(Prog::Xdp).unwrap(),
        lab.dp.program_id(Prog::Tc).unwrap(),
    );
    let hooks = lab.dp.pinned_attachments().unwrap();
    assert_eq!(hooks.len(), if nat { 2 } else { 1 }, "{hooks:?}");

    let (res, before, live_before, after, live_after, replaced, c0, c1) = thread::scope(|s| {
        let wrk = lab.wrk_keepalive(s, Duration::from_secs(15));
        thread::sleep(Duration::from_secs(2));
        let (before, live_before) = (snapshot(&lab), live_conns(&lab));
        let c0 = lab.dp.counters().unwrap();

        // xvsd exits: the Datapath goes, nothing is detached. (The stand-in
        // is a private, unattached datapath, loaded first.)
        let stand_in = load_pinned(None);
        drop(std::mem::replace(&mut lab.dp, stand_in));
        // The new xvsd: same pin directory, rules rebuilt from scratch.
        lab.dp = load_pinned(Some(&dir.0));
        assert!(
            lab.dp.adopted(),
            "the new datapath did not adopt the pinned state"
        );
        lab.table = rules(&lab, nat, true);
        lab.sync();
        let replaced = lab
            .topo
            .director()
            .enter(|| {
                lab.dp
                    .replace_pinned()
                    .expect("replacing the pinned programs")
            })
            .unwrap();
        let (after, live_after) = (snapshot(&lab), live_conns(&lab));
        assert!(
            !wrk.is_finished(),
            "wrk ended before the restart was over; the check below would compare closed connections"
        );
        let c1 = lab.dp.counters().unwrap();
        (
            wrk.join().unwrap(),
            before,
            live_before,
            after,
            live_after,
            replaced,
            c0,
            c1,
        )
    });
    let new_ids: Vec<DestId> = (0..2).map(|i| lab.dest(i)).collect();
    println!(
        "restart under load ({}, {attach:?}): wrk {} requests, {} socket errors ({} timeouts), \
         {} non-2xx; per real (ActiveConn, InActConn, Conns, InPkts) before {before:?} with \
         {live_before} live connections, after {after:?} with {live_after}; DestIds {old_ids:?} \
         -> {new_ids:?}; programs replaced: {replaced:?}",
        if nat { "NAT" } else { "DR" },
        res.requests,
        res.socket_errors,
        res.timeouts,
        res.non_2xx
    );
    println!("{}", lab.listing());

    assert!(res.requests > 0, "wrk did no request: {res:?}");
    assert_eq!(res.socket_errors, 0, "wrk socket errors: {res:?}");
    assert_eq!(res.non_2xx, 0, "wrk non-2xx answers: {res:?}");
    assert!(
        old_ids.iter().zip(&new_ids).all(|(a, b)| a != b),
        "the rebuilt table should have other DestIds: {old_ids:?} -> {new_ids:?}"
    );
    // The counts are the live connections, before and after.
    let active = |v: &[(u32, u32, u64, u64)]| v.iter().map(|c| c.0).sum::<u32>() as usize;
    assert_eq!(live_before, 16, "wrk's connections before the restart");
    assert_eq!(
        active(&before),
        live_before,
        "ActiveConn before: {before:?}"
    );
    assert_eq!(live_after, 16, "wrk's connections after the restart");
    assert_eq!(active(&after), live_after, "ActiveConn after: {after:?}");
    for i in 0..2 {
        let (b, a) = (before[i], after[i]);
        assert_eq!((a.0, a.1), (b.0, b.1), "rs{i} ActiveConn/InActConn");
        assert_eq!(a.2, b.2, "rs{i} Conns: no connection was scheduled anew");
        assert!(
            a.3 > b.3,
            "rs{i} InPkts did not go on counting: {b:?} -> {a:?}"
        );
    }
    assert!(c1.forwarded > c0.forwarded, "{c0:?} -> {c1:?}");
    assert_eq!(c1.no_dest, c0.no_dest);
    assert_eq!(c1.unavailable, c0.unavailable);
    // The attachments now run the new programs.
    let new_progs = (
        lab.dp.program_id(Prog::Xdp).unwrap(),
        lab.dp.program_id(Prog::Tc).unwrap(),
    );
    assert_eq!(replaced.len(), hooks.len());
    for r in &replaced {
        assert!(r.replaced);
        let (old, new) = match r.hook {
            Hook::Xdp => (old_progs.0, new_progs.0),
            Hook::Tc => (old_progs.1, new_progs.1),
        };
        assert_eq!(r.prog_id, new, "{r:?}");
        assert_ne!(old, new);
    }
    // Still serving after wrk, with the new rules.
    let by = lab.curl_close(4);
    assert_eq!(by.values().sum::<usize>(), 4);

    // Clean stop: no program left on the director, no pin directory.
    let dp = std::mem::replace(&mut lab.dp, load_pinned(None));
    let mut dp = dp;
    assert_eq!(dp.detach_all().unwrap(), hooks.len());
    let d = lab.topo.director();
    for i in if nat { vec!["d0", "d1"] } else { vec!["d0"] } {
        let tc = d
            .enter(|| xvs_datapath::tc_ingress_programs(i))
            .unwrap()
            .unwrap();
        assert!(tc.is_empty(), "{i} still has tc programs {tc:?}");
        let link = d.ip(&["-d", "link", "show", "dev", i]).unwrap();
        assert!(!link.contains("prog/xdp"), "{i} still has XDP: {link}");
    }
    dp.unpin().unwrap();
    assert!(!dir.0.exists(), "unpin left {}", dir.0.display());
}

#[test]
fn nat_restart_under_keepalive_load_drops_nothing() {
    restart_under_load(true, Attach::Tc);
}

#[test]
fn dr_xdp_restart_under_keepalive_load_drops_nothing() {
    restart_under_load(false, Attach::Xdp);
}
