//! The classic LVS labs, end to end, with real parts: nginx real servers in
//! network namespaces, curl and wrk on a client, and the xvs eBPF datapath
//! on the director, driven by ipvsadm command lines.
//!
//! The namespaces come from xvs-testhost (`Topology`, 198.18.0.0/15,
//! `xvs-lab-<pid>-<n>-<role>`, deleted on drop). See `labs_common` for how
//! the datapath is attached in each mode. The labs run one at a time.
//!
//! Needs root; without it every test fails with a message saying so.

mod labs_common;

use labs_common::{got, show, Lab};

/// LVS-NAT, `wrr` with weights 2:1: 300 new connections split exactly
/// 200:100 (wrr is deterministic), and the datapath's per-server
/// connection counters say the same.
#[test]
fn nat_wrr_2_to_1_splits_300_requests_200_to_100() {
    let mut lab = Lab::nat(2, true);
    lab.ipvsadm("-A -t {vip}:80 -s wrr");
    lab.ipvsadm("-a -t {vip}:80 -r {rs0}:80 -m -w 2");
    lab.ipvsadm("-a -t {vip}:80 -r {rs1}:80 -m -w 1");
    let before = lab.dp.counters().unwrap();

    let by = lab.curl_close(300);
    let after = lab.dp.counters().unwrap();
    println!("LVS-NAT wrr 2:1 (tc): answers {}", show(&by));
    println!("{}", lab.listing());

    assert_eq!(got(&by, "rs0"), 200, "answers by server: {}", show(&by));
    assert_eq!(got(&by, "rs1"), 100, "answers by server: {}", show(&by));
    // The datapath scheduled exactly these connections...
    assert_eq!(lab.conns(0), 200, "rs0 Conns");
    assert_eq!(lab.conns(1), 100, "rs1 Conns");
    // ...and still tracks every one of them (closed ones in TIME_WAIT,
    // counted inactive, for two minutes).
    let (a0, i0) = lab.counts(0);
    let (a1, i1) = lab.counts(1);
    assert_eq!(a0 + i0, 200, "rs0 ActiveConn {a0} + InActConn {i0}");
    assert_eq!(a1 + i1, 100, "rs1 ActiveConn {a1} + InActConn {i1}");
    // Both directions went through it: NAT in and out.
    for i in 0..2 {
        let s = lab.stats(i);
        assert!(s.inpkts > 0 && s.outpkts > 0, "rs{i} stats {s:?}");
    }
    assert!(
        after.forwarded - before.forwarded >= 300 * 3,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.replied - before.replied >= 300 * 2,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.malformed, before.malformed);
    assert_eq!(after.no_dest, before.no_dest);
}
