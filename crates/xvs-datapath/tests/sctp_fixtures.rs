//! SCTP services (`--sctp-service`) through BPF_PROG_TEST_RUN, XDP and tc:
//! - the kernel's association states (`ipvsadm -Lc`) and ActiveConn /
//!   InActConn as chunks go by, by DR (the INPUT-ONLY table) and by NAT;
//! - NAT to another port: the CRC32c updated for the port alone, both ways.
//!   Expected frames are built from scratch with the CRC32c computed over
//!   the whole packet, so equal bytes prove the update;
//! - an ABORT bundled after a COOKIE ECHO, sloppy_sctp, truncated headers,
//!   TUN and IPv6.
//!
//! This kernel has no SCTP stack, so there is no SCTP lab: the packets are
//! built here. Needs root and a BPF-capable kernel; fails (does not skip)
//! without them.

mod common;

use common::*;
use xvs_core::model::DestId;
use xvs_core::persist::Sysctls;
use xvs_core::table::IpvsTable;
use xvs_datapath::{verdict::*, Datapath, NextHop, Prog, L2};

const CLIENT_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x00, 0x01];
const DIRECTOR_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x00, 0x02];
const RS_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x00, 0x03];
const EGRESS_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x00, 0x04];
const CLIENT: [u8; 4] = [198, 18, 0, 2];
const VIP: [u8; 4] = [198, 18, 2, 1];
const RS: [u8; 4] = [198, 18, 1, 2];

// chunk types (RFC 9260 3.2)
const DATA: u8 = 0;
const INIT: u8 = 1;
const INIT_ACK: u8 = 2;
const SACK: u8 = 3;
const ABORT: u8 = 6;
const SHUTDOWN: u8 = 7;
const SHUTDOWN_ACK: u8 = 8;
const COOKIE_ECHO: u8 = 10;
const COOKIE_ACK: u8 = 11;
const SHUTDOWN_COMPLETE: u8 = 14;

/// An INIT's fixed parameters: initiate tag, a_rwnd, streams, initial TSN.
const INIT_PARAMS: [u8; 16] = [
    0x11, 0x22, 0x33, 0x44, 0, 1, 0, 0, 0, 10, 0, 10, 0x55, 0x66, 0x77, 0x88,
];

/// Chunks of a packet: (type, flags, value).
type Chunks<'a> = [(u8, u8, &'a [u8])];

fn verdicts(prog: Prog) -> (u32, u32) {
    match prog {
        Prog::Xdp => (XDP_TX, XDP_PASS),
        Prog::Tc => (TC_ACT_REDIRECT, TC_ACT_OK),
    }
}

struct Dp {
    dp: Datapath,
    table: IpvsTable,
}

impl Dp {
    fn new(rules: &[&str], sysctls: Sysctls) -> Dp {
        let mut dp = load();
        let table = table(rules);
        let l2 = L2 {
            default: NextHop {
                mac: RS_MAC,
                src_mac: EGRESS_MAC,
                ifindex: 0,
            },
            tun_saddr: Some(std::net::IpAddr::from([198, 18, 1, 1])),
            ..L2::default()
        };
        dp.sync(&table, &sysctls, &l2).unwrap();
        Dp { dp, table }
    }

    /// `--sctp-service 198.18.2.1:5000 -s rr` with one real server (`real`:
    /// address and method, as ipvsadm takes them).
    fn vip(real: &str, sysctls: Sysctls) -> Dp {
        Dp::new(
            &[
                "-A --sctp-service 198.18.2.1:5000 -s rr",
                &format!("-a --sctp-service 198.18.2.1:5000 -r {real}"),
            ],
            sysctls,
        )
    }

    fn real(&self) -> DestId {
        self.table.services().next().unwrap().dests[0].id
    }

    /// (state of the one connection, ActiveConn, InActConn)
    fn state(&self) -> (String, u32, u32) {
        let conns = self.dp.connections();
        assert_eq!(conns.len(), 1, "{conns:?}");
        let c = self.dp.real_counts(self.real()).unwrap().unwrap();
        (conns[0].state.clone(), c.active, c.inactive)
    }
}

/// An IPv4 SCTP frame: (MACs, addresses, (ports, verification tag), chunks).
fn frame4(
    (dm, sm): (Mac, Mac),
    (src, dst): ([u8; 4], [u8; 4]),
    (sp, dp, tag): (u16, u16, u32),
    chunks: &Chunks,
) -> Vec<u8> {
    eth(
        dm,
        sm,
        0x0800,
        &ipv4(src, dst, 132, &sctp(sp, dp, tag, chunks)),
    )
}

/// A packet from the real server's side to the director (the association's
/// verification tag, 0x11223344): `addrs` the real server's and the
/// client's, or (as the director SNATs it) the VIP's and the client's.
fn from_server(addrs: ([u8; 4], [u8; 4]), ports: (u16, u16), chunks: &Chunks) -> Vec<u8> {
    frame4(
        (DIRECTOR_MAC, RS_MAC),
        addrs,
        (ports.0, ports.1, 0x1122_3344),
        chunks,
    )
}

/// The client's packet to the VIP (verification tag 0).
fn from_client(sport: u16, dport: u16, chunks: &Chunks) -> Vec<u8> {
    frame4(
        (DIRECTOR_MAC, CLIENT_MAC),
        (CLIENT, VIP),
        (sport, dport, 0),
        chunks,
    )
}

fn dr_rewritten(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[0..6].copy_from_slice(&RS_MAC);
    f[6..12].copy_from_slice(&EGRESS_MAC);
    f
}

#[test]
fn the_test_crc32c_is_the_standard_one() {
    // RFC 3720 B.4 / the CRC catalogue's check value for CRC-32C
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
}

#[test]
fn dr_association_states_follow_the_kernels_input_only_table() {
    for prog in [Prog::Xdp, Prog::Tc] {
        let d = Dp::vip("198.18.1.2 -g", Sysctls::default());
        let (fwd, pass) = verdicts(prog);
        // DATA of an association the director never saw start: not
        // scheduled, handed to the stack
        let data = from_client(40000, 5000, &[(DATA, 3, b"stray data..")]);
        let got = d.dp.test_run(prog, &data).unwrap();
        assert_eq!(
            (got.verdict, got.packet),
            (pass, data),
            "{prog:?} stray DATA"
        );
        assert_eq!(d.dp.conn_count(), 0);
        // the association, as DR sees it: the client's chunks only
        let steps: [(&Chunks, (&str, u32, u32)); 5] = [
            (&[(INIT, 0, &INIT_PARAMS)], ("INIT1", 0, 1)),
            (&[(COOKIE_ECHO, 0, b"a cookie")], ("ESTABLISHED", 1, 0)),
            (
                &[(DATA, 3, b"hello, world"), (SACK, 0, &[0; 12])],
                ("ESTABLISHED", 1, 0),
            ),
            (&[(SHUTDOWN_ACK, 0, b"")], ("CLOSED", 0, 1)),
            // a new INIT on the closed entry replaces it (conn_reuse_mode 1)
            (&[(INIT, 0, &INIT_PARAMS)], ("INIT1", 0, 1)),
        ];
        for (chunks, want) in steps {
            let f = from_client(40000, 5000, chunks);
            let got = d.dp.test_run(prog, &f).unwrap();
            assert_eq!(got.verdict, fwd, "{prog:?} chunk {}", chunks[0].0);
            assert_eq!(
                got.packet,
                dr_rewritten(&f),
                "{prog:?} chunk {}",
                chunks[0].0
            );
            let (s, a, i) = d.state();
            assert_eq!(
                (s.as_str(), a, i),
                want,
                "{prog:?} after chunk {}",
                chunks[0].0
            );
        }
        let c = &d.dp.connections()[0];
        // INIT1's timeout: 4 s
        assert!(c.expires <= 4, "{c:?}");
        assert_eq!(c.protocol, "SCTP");
    }
}

/// NAT VIP:5000 -> RS:6000, in a namespace of its own (the replies' FIB
/// lookup answers FWD_DISABLED there: SNATed and handed to the stack).
#[test]
fn nat_to_another_port_updates_the_crc32c_both_ways() {
    in_private_netns(|| {
        for prog in [Prog::Xdp, Prog::Tc] {
            let d = Dp::vip("198.18.1.2:6000 -m", Sysctls::default());
            let (fwd, pass) = verdicts(prog);
            let big = vec![0xa5u8; 1400];
            let init_ack_params = [INIT_PARAMS.as_slice(), b"state cookie...."].concat();
            // (the client's or else the server's, chunks, state after)
            let steps: [(bool, &Chunks, &str); 6] = [
                (true, &[(INIT, 0, &INIT_PARAMS)], "INIT1"),
                (false, &[(INIT_ACK, 0, &init_ack_params)], "C-SENT"),
                (true, &[(COOKIE_ECHO, 0, b"state cookie....")], "C-REPLIED"),
                (false, &[(COOKIE_ACK, 0, b"")], "ESTABLISHED"),
                // long packets: the update carried over ~1400 bytes
                (true, &[(DATA, 3, &big)], "ESTABLISHED"),
                (
                    false,
                    &[(SACK, 0, &[1; 12]), (DATA, 3, &big)],
                    "ESTABLISHED",
                ),
            ];
            for (n, (client, chunks, state)) in steps.iter().enumerate() {
                let (input, want, verdict) = if *client {
                    (
                        from_client(40000, 5000, chunks),
                        frame4((RS_MAC, EGRESS_MAC), (CLIENT, RS), (40000, 6000, 0), chunks),
                        fwd,
                    )
                } else {
                    (
                        from_server((RS, CLIENT), (6000, 40000), chunks),
                        from_server((VIP, CLIENT), (5000, 40000), chunks),
                        pass,
                    )
                };
                let got = d.dp.test_run(prog, &input).unwrap();
                assert_eq!(got.verdict, verdict, "{prog:?} step {n}");
                assert_eq!(got.packet, want, "{prog:?} step {n}: frame");
                assert!(checksums_ok(&got.packet), "{prog:?} step {n}: CRC32c");
                assert_eq!(d.state().0, *state, "{prog:?} step {n}");
            }
            assert_eq!(d.state(), ("ESTABLISHED".into(), 1, 0), "{prog:?}");
            // client SHUTDOWN, server SHUTDOWN ACK, client SHUTDOWN COMPLETE
            for (client, ty, state) in [
                (true, SHUTDOWN, "S-RECEIVED"),
                (false, SHUTDOWN_ACK, "S-ACK-SENT"),
                (true, SHUTDOWN_COMPLETE, "CLOSED"),
            ] {
                let chunks: &Chunks = &[(ty, 0, &[0, 0, 0, 1])];
                let f = if client {
                    from_client(40000, 5000, chunks)
                } else {
                    from_server((RS, CLIENT), (6000, 40000), chunks)
                };
                d.dp.test_run(prog, &f).unwrap();
                assert_eq!(d.state().0, state, "{prog:?} chunk {ty}");
            }
            assert_eq!(d.state(), ("CLOSED".into(), 0, 1), "{prog:?}");
            let s = d.dp.real_stats(d.real()).unwrap().unwrap();
            assert_eq!((s.conns, s.inpkts, s.outpkts), (1, 5, 4), "{prog:?}");
        }
    })
}

#[test]
fn an_abort_bundled_after_a_cookie_echo_is_the_packets_event() {
    in_private_netns(|| {
        for (bundled, state) in [(false, "C-REPLIED"), (true, "CLOSED")] {
            let d = Dp::vip("198.18.1.2 -m", Sysctls::default());
            let init = from_client(40000, 5000, &[(INIT, 0, &INIT_PARAMS)]);
            assert_eq!(d.dp.test_run(Prog::Xdp, &init).unwrap().verdict, XDP_TX);
            let ack = from_server((RS, CLIENT), (5000, 40000), &[(INIT_ACK, 0, &INIT_PARAMS)]);
            d.dp.test_run(Prog::Xdp, &ack).unwrap();
            assert_eq!(d.state().0, "C-SENT");
            // a cookie of 13 bytes: the ABORT starts after 3 bytes of padding
            let mut chunks: Vec<(u8, u8, &[u8])> = vec![(COOKIE_ECHO, 0, b"13-byte cooki")];
            if bundled {
                chunks.push((ABORT, 0, b""));
            }
            let echo = from_client(40000, 5000, &chunks);
            assert_eq!(d.dp.test_run(Prog::Xdp, &echo).unwrap().verdict, XDP_TX);
            assert_eq!(d.state().0, state, "bundled: {bundled}");
        }
    })
}

#[test]
fn sloppy_sctp_schedules_any_first_chunk_but_an_abort() {
    for sloppy in [false, true] {
        let d = Dp::vip(
            "198.18.1.2 -g",
            Sysctls {
                sloppy_sctp: sloppy,
                ..Sysctls::default()
            },
        );
        let abort = from_client(40001, 5000, &[(ABORT, 0, b"")]);
        let got = d.dp.test_run(Prog::Xdp, &abort).unwrap();
        assert_eq!(
            (got.verdict, d.dp.conn_count()),
            (XDP_PASS, 0),
            "sloppy {sloppy}: ABORT"
        );
        let data = from_client(40000, 5000, &[(DATA, 3, b"mid-association")]);
        let got = d.dp.test_run(Prog::Xdp, &data).unwrap();
        let want = if sloppy { XDP_TX } else { XDP_PASS };
        assert_eq!(got.verdict, want, "sloppy {sloppy}: DATA");
        if sloppy {
            // scheduled on DATA: the DATA event from NONE is ESTABLISHED
            assert_eq!(d.state(), ("ESTABLISHED".into(), 1, 0));
        }
    }
}

#[test]
fn truncated_sctp_headers_are_malformed_and_pass() {
    let d = Dp::vip("198.18.1.2 -g", Sysctls::default());
    // the common header alone: no chunk to read
    let mut s = sctp(40000, 5000, 0, &[]);
    let short = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT, VIP, 132, &s),
    );
    // a whole INIT in the frame, but an IP length that stops inside it
    s = sctp(40000, 5000, 0, &[(INIT, 0, &INIT_PARAMS)]);
    let mut cut = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT, VIP, 132, &s),
    );
    cut[16..18].copy_from_slice(&(20u16 + 14).to_be_bytes());
    let c = inet_csum(&{
        let mut h = cut[14..34].to_vec();
        h[10..12].fill(0);
        h
    });
    cut[24..26].copy_from_slice(&c.to_be_bytes());
    for prog in [Prog::Xdp, Prog::Tc] {
        for f in [&short, &cut] {
            let got = d.dp.test_run(prog, f).unwrap();
            assert_eq!(got.verdict, verdicts(prog).1, "{prog:?}");
            assert_eq!(&got.packet, f, "{prog:?}");
        }
    }
    assert_eq!(d.dp.counters().unwrap().malformed, 4);
    assert_eq!(d.dp.conn_count(), 0);
}

#[test]
fn tun_encapsulates_sctp_untouched() {
    for prog in [Prog::Xdp, Prog::Tc] {
        let d = Dp::vip("198.18.1.2 -i", Sysctls::default());
        let inner = ipv4(
            CLIENT,
            VIP,
            132,
            &sctp(40000, 5000, 0, &[(INIT, 0, &INIT_PARAMS)]),
        );
        let got =
            d.dp.test_run(prog, &eth(DIRECTOR_MAC, CLIENT_MAC, 0x0800, &inner))
                .unwrap();
        assert_eq!(got.verdict, verdicts(prog).0, "{prog:?}");
        let ip = &got.packet[14..];
        assert_eq!(
            (ip[9], &ip[12..16], &ip[16..20]),
            (4, &[198, 18, 1, 1][..], &RS[..])
        );
        assert_eq!(&ip[20..], &inner[..], "{prog:?}: the inner packet as sent");
        assert_eq!(d.state(), ("INIT1".into(), 0, 1), "{prog:?}");
    }
}

fn v6(net: u16, last: u8) -> [u8; 16] {
    // 2001:2::/48, the benchmarking range: only ever in test frames
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x00, 0x02]);
    a[6..8].copy_from_slice(&net.to_be_bytes());
    a[15] = last;
    a
}

#[test]
fn ipv6_nat_rewrites_addresses_and_port_with_the_crc32c() {
    in_private_netns(|| {
        let (client, vip, rs) = (v6(0, 2), v6(2, 1), v6(1, 2));
        for prog in [Prog::Xdp, Prog::Tc] {
            let d = Dp::new(
                &[
                    "-A --sctp-service [2001:2:0:2::1]:5000 -s rr",
                    "-a --sctp-service [2001:2:0:2::1]:5000 -r [2001:2:0:1::2]:6000 -m",
                ],
                Sysctls::default(),
            );
            let (fwd, pass) = verdicts(prog);
            // (MACs, addresses, (ports, verification tag), chunks)
            let frame = |(dm, sm): (Mac, Mac), (src, dst), (sp, dp, tag), chunks: &Chunks| {
                eth(
                    dm,
                    sm,
                    0x86dd,
                    &ipv6(src, dst, 132, &sctp(sp, dp, tag, chunks)),
                )
            };
            let init: &Chunks = &[(INIT, 0, &INIT_PARAMS)];
            let input = frame(
                (DIRECTOR_MAC, CLIENT_MAC),
                (client, vip),
                (40000, 5000, 0),
                init,
            );
            let got = d.dp.test_run(prog, &input).unwrap();
            assert_eq!(got.verdict, fwd, "{prog:?}");
            let want = frame((RS_MAC, EGRESS_MAC), (client, rs), (40000, 6000, 0), init);
            assert_eq!(got.packet, want, "{prog:?}");
            assert!(checksums_ok_any(&got.packet), "{prog:?}");
            let ack: &Chunks = &[(INIT_ACK, 0, &INIT_PARAMS)];
            let reply = frame((DIRECTOR_MAC, RS_MAC), (rs, client), (6000, 40000, 7), ack);
            let got = d.dp.test_run(prog, &reply).unwrap();
            assert_eq!(got.verdict, pass, "{prog:?} reply");
            let want = frame((DIRECTOR_MAC, RS_MAC), (vip, client), (5000, 40000, 7), ack);
            assert_eq!(got.packet, want, "{prog:?} reply");
            assert_eq!(d.state().0, "C-SENT", "{prog:?}");
        }
    })
}

/// ICMP errors about an association go where its packets go, as
/// `ip_vs_in_icmp()` sends them: a router's "fragmentation needed" about
/// what the real server sent the client (VIP:5000 -> client), to the real
/// server; by NAT with the quoted source rewritten to the real server's
/// address and port (the quoted CRC32c, past the 8 quoted bytes, is left
/// alone, as IPVS leaves it).
#[test]
fn icmp_errors_about_an_association_go_to_its_real_server() {
    const ROUTER: [u8; 4] = [198, 18, 0, 254];
    let init: &Chunks = &[(INIT, 0, &INIT_PARAMS)];
    let ack: &Chunks = &[(INIT_ACK, 0, &INIT_PARAMS)];
    let to_vip = |quoted: &[u8]| {
        eth(
            DIRECTOR_MAC,
            CLIENT_MAC,
            0x0800,
            &ipv4(ROUTER, VIP, 1, &frag_needed(quoted)),
        )
    };
    let sent = ipv4(VIP, CLIENT, 132, &sctp(5000, 40000, 7, ack));
    in_private_netns(|| {
        for prog in [Prog::Xdp, Prog::Tc] {
            let fwd = verdicts(prog).0;
            // DR: forwarded as it is
            let d = Dp::vip("198.18.1.2 -g", Sysctls::default());
            let got =
                d.dp.test_run(prog, &from_client(40000, 5000, init))
                    .unwrap();
            assert_eq!(got.verdict, fwd, "{prog:?} DR INIT");
            let err = to_vip(&sent);
            let got = d.dp.test_run(prog, &err).unwrap();
            assert_eq!(got.verdict, fwd, "{prog:?} DR error");
            assert_eq!(got.packet, dr_rewritten(&err), "{prog:?} DR error");
            // NAT to port 6000
            let d = Dp::vip("198.18.1.2:6000 -m", Sysctls::default());
            let got =
                d.dp.test_run(prog, &from_client(40000, 5000, init))
                    .unwrap();
            assert_eq!(got.verdict, fwd, "{prog:?} NAT INIT");
            let got = d.dp.test_run(prog, &to_vip(&sent)).unwrap();
            assert_eq!(got.verdict, fwd, "{prog:?} NAT error");
            let quoted = ipv4(RS, CLIENT, 132, &sctp(6000, 40000, 7, ack));
            let want = eth(
                RS_MAC,
                EGRESS_MAC,
                0x0800,
                &ipv4(ROUTER, RS, 1, &frag_needed(&quoted)),
            );
            // (built from scratch: equal bytes mean right checksums)
            assert_eq!(got.packet, want, "{prog:?} NAT error");
            // about another association: the director's own
            let other = to_vip(&ipv4(VIP, CLIENT, 132, &sctp(5000, 40001, 7, ack)));
            let got = d.dp.test_run(prog, &other).unwrap();
            assert_eq!((got.verdict, got.packet), (verdicts(prog).1, other));
        }
    })
}
