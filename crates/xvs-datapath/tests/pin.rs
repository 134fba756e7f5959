//! Pinned datapaths (`LoadOptions::pin_dir`): state taken over by a second
//! load, real servers matched by identity whatever their `DestId`s, a
//! `max_conns` mismatch refused, two instances in two network namespaces
//! kept apart, and a clean stop that leaves nothing behind.
//!
//! Packets go through `BPF_PROG_TEST_RUN` (the live maps); attachments are
//! made on veths in namespaces `xvs-pin-<pid>-<n>` (addresses
//! from 198.18.0.0/15 only). Pin directories are
//! `/sys/fs/bpf/xvs-pin-<pid>-<n>`, removed by a guard. Needs root; fails
//! without it.

mod common;

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
};

use common::*;
use xvs_core::{persist::Sysctls, table::IpvsTable};
use xvs_datapath::{verdict::*, Datapath, Error, Hook, LoadOptions, NextHop, Prog, XdpMode, L2};
use xvs_testhost::{netns::unique_id, Netns};

const CLIENT_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x01, 0x01];
const DIRECTOR_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x01, 0x02];
const CLIENT: [u8; 4] = [198, 18, 0, 2];
const VIP: [u8; 4] = [198, 18, 2, 1];
const RS: [&str; 2] = ["198.18.1.2", "198.18.1.3"];
const MAX_CONNS: u32 = 1 << 16;

/// Removes the pin directory (detaching what is pinned there) when dropped.
struct PinDir(PathBuf);

impl PinDir {
    fn new() -> PinDir {
        require_root();
        xvs_datapath::ensure_bpffs().expect("bpffs at /sys/fs/bpf");
        PinDir(Path::new(xvs_datapath::pin::BPFFS).join(unique_id("xvs-pin")))
    }

    fn opts(&self) -> LoadOptions {
        LoadOptions {
            pin_dir: Some(self.0.clone()),
            ..LoadOptions::with_max_conns(MAX_CONNS)
        }
    }

    fn load(&self) -> Datapath {
        Datapath::load_with(self.opts()).unwrap_or_else(|e| panic!("pinned load: {e}"))
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = xvs_datapath::unpin_dir(&self.0);
    }
}

fn rs_mac(i: usize) -> Mac {
    [0x02, 0x78, 0x76, 0x73, 0x02, i as u8]
}

/// Each real server's own next-hop MAC, so the output frame says which one
/// a packet went to.
fn l2() -> L2 {
    let mut l2 = L2::default();
    for (i, a) in RS.iter().enumerate() {
        l2.by_addr.insert(
            a.parse::<IpAddr>().unwrap(),
            NextHop {
                mac: rs_mac(i),
                src_mac: DIRECTOR_MAC,
                ifindex: 0,
            },
        );
    }
    l2
}

/// `-s rr` over the two real servers. With `shift`, a third server is added
/// and removed first, so the two get other `DestId`s than without.
fn rules(shift: bool) -> IpvsTable {
    let mut lines = vec!["-A -t 198.18.2.1:80 -s rr".to_string()];
    if shift {
        lines.push("-a -t 198.18.2.1:80 -r 198.18.1.9 -g".into());
        lines.push("-d -t 198.18.2.1:80 -r 198.18.1.9".into());
    }
    for a in RS {
        lines.push(format!("-a -t 198.18.2.1:80 -r {a} -g"));
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    table(&lines)
}

fn dest_ids(t: &IpvsTable) -> Vec<xvs_core::model::DestId> {
    RS.iter()
        .map(|a| {
            let a: IpAddr = a.parse().unwrap();
            t.services()
                .flat_map(|s| s.dests.iter())
                .find(|d| d.cfg.addr == a)
                .unwrap()
                .id
        })
        .collect()
}

fn frame(sport: u16, flags: u8) -> Vec<u8> {
    eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT, VIP, 6, &tcp(sport, 80, flags)),
    )
}

/// Runs a TCP segment from client port `sport` through XDP: the index of
/// the real server it was sent to.
fn send(dp: &Datapath, sport: u16, flags: u8) -> usize {
    let out = dp.test_run(Prog::Xdp, &frame(sport, flags)).unwrap();
    assert_eq!(out.verdict, XDP_TX, "port {sport} flags {flags:#x}");
    (0..RS.len())
        .find(|&i| out.packet[..6] == rs_mac(i))
        .unwrap_or_else(|| {
            panic!(
                "port {sport}: sent to no real server: {:?}",
                &out.packet[..6]
            )
        })
}

/// (ActiveConn, InActConn, Conns, InPkts) of each real server of `t`.
fn per_real(dp: &Datapath, t: &IpvsTable) -> Vec<(u32, u32, u64, u64)> {
    dest_ids(t)
        .into_iter()
        .map(|id| {
            let c = dp.real_counts(id).unwrap().expect("real counts");
            let s = dp.real_stats(id).unwrap().expect("real stats");
            (c.active, c.inactive, s.conns, s.inpkts)
        })
        .collect()
}

/// A pinned datapath is dropped (as when xvsd exits) and loaded again from
/// the same directory with a table whose `DestId`s differ: connections,
/// counts, counters and the rr cursor carry on, matched by identity; the
/// rules work even before the first sync; another `max_conns` is refused.
#[test]
fn pinned_state_is_taken_over_by_the_next_load_with_other_dest_ids() {
    let dir = PinDir::new();
    assert!(!xvs_datapath::ensure_bpffs().unwrap(), "mounted twice");

    let first = rules(false);
    let mut dp = dir.load();
    assert!(!dp.adopted(), "a fresh directory has nothing to adopt");
    dp.sync(&first, &Sysctls::default(), &l2()).unwrap();
    // Five connections, established (SYN then ACK), rr: 3 + 2.
    let mut owner = HashMap::new();
    for p in 0..5u16 {
        let sport = 41000 + p;
        let i = send(&dp, sport, 0x02);
        assert_eq!(send(&dp, sport, 0x10), i);
        owner.insert(sport, i);
    }
    let before = per_real(&dp, &first);
    let counters = dp.counters().unwrap();
    assert_eq!(dp.conn_count(), 5);
    let mut split: Vec<(u32, u32)> = before.iter().map(|r| (r.0, r.1)).collect();
    split.sort();
    assert_eq!(
        split,
        vec![(2, 0), (3, 0)],
        "(ActiveConn, InActConn) by server"
    );
    // Which server rr picks next.
    let next = (owner[&41004] + 1) % 2;
    drop(dp);

    // Another table size is refused, clearly, and changes nothing.
    let mut wrong = dir.opts();
    wrong.max_conns = MAX_CONNS * 2;
    match Datapath::load_with(wrong) {
        Err(Error::PinMismatch(m)) => {
            assert!(m.contains("max_conns"), "{m}");
            println!("refused as expected: {m}");
        }
        other => panic!("a max_conns mismatch was not refused: {other:?}"),
    }

    let mut dp = dir.load();
    assert!(dp.adopted());
    assert_eq!(dp.conn_count(), 5);
    assert_eq!(dp.counters().unwrap(), counters);
    // The pinned rules forward before any sync: established connections go
    // on to their real server.
    assert_eq!(send(&dp, 41000, 0x10), owner[&41000]);

    let second = rules(true);
    let (old_ids, new_ids) = (dest_ids(&first), dest_ids(&second));
    assert!(
        old_ids.iter().zip(&new_ids).all(|(a, b)| a != b),
        "the rebuilt table should have other DestIds: {old_ids:?} {new_ids:?}"
    );
    dp.sync(&second, &Sysctls::default(), &l2()).unwrap();
    let mut after = per_real(&dp, &second);
    // One more packet went to owner[41000]'s server above.
    after[owner[&41000]].3 -= 1;
    assert_eq!(after, before, "counts and counters by real server");
    for (&sport, &i) in &owner {
        assert_eq!(send(&dp, sport, 0x10), i, "connection from port {sport}");
    }
    // rr goes on from its cursor; a new connection is counted on the slot
    // the table's new DestId maps to.
    assert_eq!(send(&dp, 41005, 0x02), next, "rr cursor after adoption");
    // (SYN_RECV counts as active, as in the kernel.)
    let c = dp.real_counts(new_ids[next]).unwrap().unwrap();
    assert_eq!((c.active, c.inactive), (before[next].0 + 1, 0));
    let snap = dp.snapshot(&second).unwrap();
    let active: u32 = snap.services[0].dests.iter().map(|d| d.active_conns).sum();
    assert_eq!(active, 6);

    dp.unpin().unwrap();
    assert!(!dir.0.exists(), "unpin left {}", dir.0.display());
}

/// A namespace with a veth pair `xp0`/`xp1`, up (this kernel has no dummy
/// driver).
fn ns_with_veth() -> Netns {
    let ns = Netns::create(&unique_id("xvs-pin")).expect("netns");
    ns.ip(&["link", "add", "xp0", "type", "veth", "peer", "name", "xp1"])
        .unwrap();
    ns.ip(&["link", "set", "xp0", "up"]).unwrap();
    ns.ip(&["link", "set", "xp1", "up"]).unwrap();
    ns
}

fn xdp_attached(ns: &Netns) -> bool {
    let out = ns.ip(&["-d", "link", "show", "dev", "xp0"]).unwrap();
    out.contains("prog/xdp")
}

fn tc_progs(ns: &Netns) -> Vec<u32> {
    ns.enter(|| xvs_datapath::tc_ingress_programs("xp0"))
        .unwrap()
        .unwrap()
}

/// Two instances, each in its own namespace and pin directory: their
/// connections and attachments stay apart through a drop and reload of
/// both; detach_all + unpin of one removes its programs and its directory
/// and leaves the other running.
#[test]
fn two_pinned_instances_stay_apart_and_unpin_leaves_nothing() {
    let (dir_a, dir_b) = (PinDir::new(), PinDir::new());
    let (ns_a, ns_b) = (ns_with_veth(), ns_with_veth());

    let mut a = dir_a.load();
    let mut b = dir_b.load();
    a.sync(&rules(false), &Sysctls::default(), &l2()).unwrap();
    b.sync(
        &table(&[
            "-A -t 198.18.2.1:80 -s rr",
            "-a -t 198.18.2.1:80 -r 198.18.1.2 -g",
        ]),
        &Sysctls::default(),
        &l2(),
    )
    .unwrap();
    let (a_tc, a_xdp) = ns_a
        .enter(|| {
            (
                a.attach_pinned_tc("xp0").unwrap(),
                a.attach_pinned_xdp("xp0", XdpMode::Skb).unwrap(),
            )
        })
        .unwrap();
    let b_tc = ns_b.enter(|| b.attach_pinned_tc("xp0").unwrap()).unwrap();
    assert!(!a_tc.replaced && !a_xdp.replaced && !b_tc.replaced);
    assert_eq!(a_tc.prog_id, a.program_id(Prog::Tc).unwrap());
    assert_eq!(a_xdp.prog_id, a.program_id(Prog::Xdp).unwrap());
    assert_eq!(b_tc.prog_id, b.program_id(Prog::Tc).unwrap());
    assert_eq!(tc_progs(&ns_a), vec![a_tc.prog_id]);
    assert_eq!(tc_progs(&ns_b), vec![b_tc.prog_id]);
    assert!(xdp_attached(&ns_a) && !xdp_attached(&ns_b));

    for p in 0..3 {
        send(&a, 42000 + p, 0x02);
    }
    assert_eq!((a.conn_count(), b.conn_count()), (3, 0));
    assert_eq!(
        (
            a.counters().unwrap().forwarded,
            b.counters().unwrap().forwarded
        ),
        (3, 0)
    );

    // Both processes "exit": the attachments stay, with the old programs.
    drop(a);
    drop(b);
    assert_eq!(tc_progs(&ns_a), vec![a_tc.prog_id]);
    assert_eq!(tc_progs(&ns_b), vec![b_tc.prog_id]);
    assert!(xdp_attached(&ns_a));

    let mut a = dir_a.load();
    let mut b = dir_b.load();
    assert!(a.adopted() && b.adopted());
    assert_eq!((a.conn_count(), b.conn_count()), (3, 0));
    // (B's interface sees its own link-local traffic: only `passed` moves.)
    assert_eq!(
        (
            a.counters().unwrap().forwarded,
            b.counters().unwrap().forwarded
        ),
        (3, 0)
    );
    // A takes its tc link over by interface (in its namespace), B all of
    // its links at once (from anywhere).
    let r = ns_a.enter(|| a.attach_pinned_tc("xp0").unwrap()).unwrap();
    assert!(r.replaced);
    assert_eq!(r.prog_id, a.program_id(Prog::Tc).unwrap());
    let rb = b.replace_pinned().unwrap();
    assert_eq!(rb.len(), 1);
    assert!(rb[0].replaced && rb[0].hook == Hook::Tc);
    assert_eq!(tc_progs(&ns_b), vec![b.program_id(Prog::Tc).unwrap()]);
    // A's XDP link still runs the first run's program until replaced.
    let pinned = a.pinned_attachments().unwrap();
    assert_eq!(pinned.len(), 2);
    let xdp = pinned.iter().find(|p| p.hook == Hook::Xdp).unwrap();
    assert_eq!(xdp.prog_id, a_xdp.prog_id);
    let r = a.replace_pinned().unwrap();
    assert!(r.iter().all(|p| p.replaced));
    assert!(a.pinned_attachments().unwrap().iter().all(|p| p.prog_id
        == a.program_id(if p.hook == Hook::Xdp {
            Prog::Xdp
        } else {
            Prog::Tc
        })
        .unwrap()));

    // Clean stop of A: no program left on its interface, no directory.
    assert_eq!(a.detach_all().unwrap(), 2);
    assert_eq!(tc_progs(&ns_a), Vec::<u32>::new());
    assert!(!xdp_attached(&ns_a));
    a.unpin().unwrap();
    assert!(!dir_a.0.exists(), "unpin left {}", dir_a.0.display());
    // B is untouched.
    assert_eq!(tc_progs(&ns_b), vec![b.program_id(Prog::Tc).unwrap()]);
    assert_eq!(b.conn_count(), 0);
    b.unpin().unwrap();
    assert!(!dir_b.0.exists());
    assert_eq!(tc_progs(&ns_b), Vec::<u32>::new());
}

/// The interface of a pinned attachment is deleted and created again while
/// no datapath runs: the next run unpins the defunct links instead of
/// failing, and attaches afresh.
#[test]
fn links_of_a_deleted_interface_are_dropped_on_takeover() {
    let dir = PinDir::new();
    let ns = ns_with_veth();
    let mut dp = dir.load();
    ns.enter(|| {
        dp.attach_pinned_tc("xp0").unwrap();
        dp.attach_pinned_xdp("xp0", XdpMode::Skb).unwrap();
    })
    .unwrap();
    assert_eq!(dp.pinned_attachments().unwrap().len(), 2);
    drop(dp);

    ns.ip(&["link", "del", "xp0"]).unwrap();
    ns.ip(&["link", "add", "xp0", "type", "veth", "peer", "name", "xp1"])
        .unwrap();
    ns.ip(&["link", "set", "xp0", "up"]).unwrap();
    ns.ip(&["link", "set", "xp1", "up"]).unwrap();
    assert_eq!(tc_progs(&ns), Vec::<u32>::new());

    let mut dp = dir.load();
    assert!(dp.adopted());
    assert_eq!(dp.replace_pinned().unwrap(), vec![]);
    assert_eq!(dp.pinned_attachments().unwrap(), vec![]);
    let a = ns.enter(|| dp.attach_pinned_tc("xp0").unwrap()).unwrap();
    assert!(!a.replaced);
    assert_eq!(tc_progs(&ns), vec![dp.program_id(Prog::Tc).unwrap()]);
    dp.unpin().unwrap();
    assert_eq!(tc_progs(&ns), Vec::<u32>::new());
    assert!(!dir.0.exists());
}

/// Persistence templates are pinned too: after a takeover with other
/// `DestId`s, a new connection from the same client goes to the server its
/// template names, and new template ids go on from the old ones.
#[test]
fn persistence_templates_survive_the_takeover() {
    let dir = PinDir::new();
    let persistent = |shift: bool| {
        let mut t = rules(shift);
        let key = t.services().next().unwrap().cfg.key;
        let (ip, port) = match key {
            xvs_core::model::ServiceKey::Addr { addr, port, .. } => (addr, port),
            _ => unreachable!(),
        };
        t.apply(&cmd(&format!("-E -t {ip}:{port} -s rr -p 300")))
            .unwrap();
        t
    };
    let mut dp = dir.load();
    dp.sync(&persistent(false), &Sysctls::default(), &l2())
        .unwrap();
    let i = send(&dp, 43000, 0x02);
    assert_eq!(dp.template_count(), 1);
    let tpl_id = dp.templates()[0].id;
    drop(dp);

    let mut dp = dir.load();
    assert!(dp.adopted());
    let t = persistent(true);
    dp.sync(&t, &Sysctls::default(), &l2()).unwrap();
    assert_eq!(dp.template_count(), 1);
    for p in 1..4 {
        assert_eq!(send(&dp, 43000 + p, 0x02), i, "client port {}", 43000 + p);
    }
    let c = dp.real_counts(dest_ids(&t)[i]).unwrap().unwrap();
    assert_eq!((c.active, c.persist), (4, 1));
    // Another client: a new template, with the next id.
    let other = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4([198, 18, 0, 3], VIP, 6, &tcp(43100, 80, 0x02)),
    );
    assert_eq!(dp.test_run(Prog::Xdp, &other).unwrap().verdict, XDP_TX);
    let ids: Vec<u32> = dp.templates().iter().map(|t| t.id).collect();
    assert!(
        ids.contains(&(tpl_id + 1)),
        "template ids {ids:?} after {tpl_id}"
    );
    dp.unpin().unwrap();
}

/// Service ids and real-server slots index per-id arrays (counters, the
/// live flags), so they are handed out below the arrays' sizes: past the
/// last one they start again from 1, skipping the ones in use. Here the
/// counters saved in the pins say the last ids handed out were the
/// largest; the next service and real servers wrap round past the adopted
/// ones and work: forwarded, counted.
#[test]
fn ids_wrap_below_the_array_sizes_skipping_those_in_use() {
    use aya::maps::{Array, Map, MapData};
    use xvs_datapath::maps::{name, MAX_REALS, MAX_SERVICES, SEQ_SLOT, SEQ_SVC};

    let dir = PinDir::new();
    let mut dp = dir.load();
    dp.sync(&rules(false), &Sysctls::default(), &l2()).unwrap();
    drop(dp);
    let seq = || -> Array<MapData, u64> {
        let md = MapData::from_pin(dir.0.join(name::SEQ)).expect("pinned xvs_seq");
        Array::try_from(Map::Array(md)).expect("xvs_seq is an array")
    };
    {
        let mut s = seq();
        s.set(SEQ_SVC, u64::from(MAX_SERVICES - 1), 0).unwrap();
        s.set(SEQ_SLOT, u64::from(MAX_REALS - 1), 0).unwrap();
    }

    let mut dp = dir.load();
    assert!(dp.adopted());
    let mut t = rules(false);
    const VIP2: [u8; 4] = [198, 18, 2, 2];
    for l in [
        "-A -t 198.18.2.2:80 -s rr",
        "-a -t 198.18.2.2:80 -r 198.18.1.2 -g",
        "-a -t 198.18.2.2:80 -r 198.18.1.3 -g",
    ] {
        t.apply(&cmd(l)).unwrap();
    }
    dp.sync(&t, &Sysctls::default(), &l2()).unwrap();
    // service 1 and slots 1, 2 are the adopted ones
    let s = seq();
    assert_eq!(s.get(&SEQ_SVC, 0).unwrap(), 2, "service id after wrapping");
    assert_eq!(s.get(&SEQ_SLOT, 0).unwrap(), 4, "slot after wrapping");

    let mut seen = Vec::new();
    for p in 0..4u16 {
        let f = |flags| {
            eth(
                DIRECTOR_MAC,
                CLIENT_MAC,
                0x0800,
                &ipv4(CLIENT, VIP2, 6, &tcp(44000 + p, 80, flags)),
            )
        };
        let syn = dp.test_run(Prog::Xdp, &f(0x02)).unwrap();
        let ack = dp.test_run(Prog::Xdp, &f(0x10)).unwrap();
        assert_eq!(
            (syn.verdict, ack.verdict),
            (XDP_TX, XDP_TX),
            "port {}",
            44000 + p
        );
        assert_eq!(syn.packet[..6], ack.packet[..6]);
        seen.push(syn.packet[..6].to_vec());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        2,
        "rr over both real servers of the new service"
    );
    let key = t.services().nth(1).unwrap().cfg.key;
    let st = dp.service_stats(&key).unwrap().expect("service counters");
    assert_eq!((st.conns, st.inpkts), (4, 8), "the new service's counters");
    for d in &t.services().nth(1).unwrap().dests {
        let st = dp.real_stats(d.id).unwrap().expect("real counters");
        assert_eq!((st.conns, st.inpkts), (2, 4), "real server {}", d.cfg.addr);
    }
    dp.unpin().unwrap();
}
