//! Shared helpers of the integration tests: the root check and packet builders.

#![allow(dead_code)] // each test binary uses a different subset

/// These tests load BPF programs and create network namespaces: they need
/// root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN) and a BPF-capable kernel.
/// Without root they fail, loudly: a skipped datapath test must never look
/// like a passing one.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "xvs-datapath tests need root (CAP_BPF + CAP_NET_ADMIN) and a BPF-capable kernel; \
         run them as root, e.g. `sudo -E cargo test -p xvs-datapath`"
    );
}

/// Loads the datapath (with a small connection table) or fails the test with
/// the reason (e.g. the verifier log).
pub fn load() -> xvs_datapath::Datapath {
    require_root();
    match xvs_datapath::Datapath::load_with(xvs_datapath::LoadOptions::with_max_conns(1 << 16)) {
        Ok(dp) => dp,
        Err(e) => panic!("loading the xvs datapath (root, BPF-capable kernel needed): {e:?}"),
    }
}

pub type Mac = [u8; 6];

/// One's complement sum of `data` (RFC 1071), not folded.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The Internet checksum of `data` (ICMP's, over the message).
pub fn inet_csum(data: &[u8]) -> u16 {
    fold(sum16(data, 0))
}

/// An ICMP destination unreachable (type 3) with `code` and next-hop MTU
/// `mtu` quoting the first `quote` bytes of `quoted`, an IPv4 packet.
fn dest_unreach(code: u8, mtu: u16, quoted: &[u8], quote: usize) -> Vec<u8> {
    let mut icmp = vec![3, code, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(&quoted[..quote]);
    let c = inet_csum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    icmp
}

/// An ICMP "fragmentation needed" message (type 3 code 4, next-hop MTU
/// 1280) quoting the first 28 bytes of `quoted`, an IPv4 packet: its header
/// and the ports (as a router quotes what it could not forward).
pub fn frag_needed(quoted: &[u8]) -> Vec<u8> {
    dest_unreach(4, 1280, quoted, 28)
}

/// IPv4 packet `ip` without DF (its header checksum fixed).
pub fn without_df(ip: &[u8]) -> Vec<u8> {
    let mut p = ip.to_vec();
    p[6] &= !0x40;
    p[10..12].fill(0);
    let c = inet_csum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// The IPv4 packet the director answers IPv4 packet `sent` with, as its
/// stack would: from `sent`'s destination (the VIP) back to its source, TOS
/// 0xc0 over `sent`'s TOS bits, TTL 64, no DF, an ICMP destination
/// unreachable with `code` and next-hop MTU `mtu` (0 unless code 4),
/// quoting `sent`'s IP header and its TCP header through the checksum (38
/// bytes) or its UDP header (28).
pub fn answer4(sent: &[u8], code: u8, mtu: u16) -> Vec<u8> {
    answer4_from(sent, code, mtu, sent[16..20].try_into().unwrap())
}

/// [`answer4`] from address `from` (the director's own, for a message about
/// a packet that was not addressed to it).
pub fn answer4_from(sent: &[u8], code: u8, mtu: u16, from: [u8; 4]) -> Vec<u8> {
    let quote = if sent[9] == 6 { 38 } else { 28 };
    let icmp = dest_unreach(code, mtu, sent, quote);
    let len = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, (sent[1] & 0x1e) | 0xc0];
    ip.extend_from_slice(&len.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&from);
    ip.extend_from_slice(&sent[12..16]);
    let c = inet_csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

pub fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet (20-byte header, valid checksum) carrying `l4`, whose
/// TCP/UDP checksum is filled in too.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0x12,
        0x34, // id
        0x40,
        0, // DF
        64,
        proto,
        0,
        0, // checksum
    ];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = fold(sum16(&p, 0));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let mut l4 = l4.to_vec();
    let csum_at = match proto {
        6 => Some(16),
        17 => Some(6),
        _ => None,
    };
    if let Some(at) = csum_at {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src);
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        let c = fold(sum16(&l4, sum16(&pseudo, 0)));
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(&l4);
    p
}

/// A 20-byte TCP header with `flags` (0x02 = SYN), checksum zero (see [`ipv4`]).
pub fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&0x0102_0304u32.to_be_bytes()); // seq
    t.extend_from_slice(&0u32.to_be_bytes()); // ack
    t.extend_from_slice(&[0x50, flags]);
    t.extend_from_slice(&64240u16.to_be_bytes()); // window
    t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
    t
}

/// A UDP header plus `payload`, checksum zero (see [`ipv4`]).
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// An IPv6 packet with `l4` as its only payload (no extension headers).
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    p
}

/// An IPv6 packet (no extension headers) carrying `l4`, whose TCP/UDP
/// checksum is filled in over the IPv6 pseudo header.
pub fn ipv6_l4(src: [u8; 16], dst: [u8; 16], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut l4 = l4.to_vec();
    if proto == 6 || proto == 17 {
        let c = l4_csum6(&src, &dst, proto, &l4);
        let at = if proto == 6 { 16 } else { 6 };
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    ipv6(src, dst, proto, &l4)
}

/// The TCP/UDP/ICMPv6 checksum over the IPv6 pseudo header (RFC 8200 8.1) of `l4`,
/// its checksum field taken as zero; a UDP result of 0 is sent as 0xffff.
pub fn l4_csum6(src: &[u8; 16], dst: &[u8; 16], proto: u8, l4: &[u8]) -> u16 {
    // the checksum field: TCP's, ICMPv6's, UDP's
    let at = match proto {
        6 => 16,
        58 => 2,
        _ => 6,
    };
    let mut l4 = l4.to_vec();
    l4[at] = 0;
    l4[at + 1] = 0;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(src);
    pseudo.extend_from_slice(dst);
    pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, proto]);
    let c = fold(sum16(&l4, sum16(&pseudo, 0)));
    if proto == 17 && c == 0 {
        0xffff
    } else {
        c
    }
}

/// Checks the TCP/UDP checksum of an Ethernet + IPv6 frame from scratch,
/// walking hop-by-hop, routing and destination options headers. A UDP
/// checksum of 0 is wrong over IPv6.
pub fn checksums_ok6(frame: &[u8]) -> bool {
    let ip = &frame[14..];
    let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let src: [u8; 16] = ip[8..24].try_into().unwrap();
    let dst: [u8; 16] = ip[24..40].try_into().unwrap();
    let mut next = ip[6];
    let mut off = 40;
    while matches!(next, 0 | 43 | 60) {
        next = ip[off];
        off += 8 * (usize::from(ip[off + 1]) + 1);
    }
    let l4 = &ip[off..40 + plen];
    if next == 132 {
        return sctp_crc_ok(l4);
    }
    let at = if next == 6 { 16 } else { 6 };
    let got = u16::from_be_bytes([l4[at], l4[at + 1]]);
    got != 0 && got == l4_csum6(&src, &dst, next, l4)
}

/// [`checksums_ok`] or [`checksums_ok6`], by the frame's EtherType.
pub fn checksums_ok_any(frame: &[u8]) -> bool {
    if frame[12..14] == [0x86, 0xdd] {
        checksums_ok6(frame)
    } else {
        checksums_ok(frame)
    }
}

/// An ARP request "who has `target`? tell `sender`".
pub fn arp_request(sender_mac: Mac, sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0, 6, 4, 0, 1];
    a.extend_from_slice(&sender_mac);
    a.extend_from_slice(&sender);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target);
    eth([0xff; 6], sender_mac, 0x0806, &a)
}

/// One ipvsadm command line (without the program name).
pub fn cmd(line: &str) -> xvs_core::ipvsadm::Command {
    let words: Vec<&str> = line.split_whitespace().collect();
    xvs_core::ipvsadm::parse::parse_args(&words, &xvs_core::ipvsadm::NumericOnly)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// A rule table from ipvsadm command lines.
pub fn table(lines: &[&str]) -> xvs_core::table::IpvsTable {
    let mut t = xvs_core::table::IpvsTable::new();
    for l in lines {
        t.apply(&cmd(l)).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    t
}

/// Recomputes the IPv4 header and TCP/UDP checksums of an Ethernet frame
/// from scratch and says whether the ones in the frame are right (a UDP
/// checksum of 0 means "none" and is accepted).
pub fn checksums_ok(frame: &[u8]) -> bool {
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if fold(sum16(&ip[..ihl], 0)) != 0 {
        return false;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let proto = ip[9];
    let l4 = &ip[ihl..total];
    if proto == 132 {
        return sctp_crc_ok(l4);
    }
    if proto == 17 && l4[6] == 0 && l4[7] == 0 {
        return true;
    }
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip[12..20]);
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    fold(sum16(l4, sum16(&pseudo, 0))) == 0
}

/// A one-shot real server: accepts one connection within `deadline`, reads
/// a line, answers it prefixed with "real server says: ", and returns the
/// peer address the connection came from.
pub fn serve_one(
    listener: std::net::TcpListener,
    deadline: std::time::Instant,
) -> Result<std::net::SocketAddr, String> {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    listener.set_nonblocking(true).unwrap();
    let (mut conn, peer) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err("no connection reached the real server".into());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = Vec::new();
    let mut buf = [0u8; 65536];
    while !req.ends_with(b"\n") {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("server read: {e}")),
        }
    }
    conn.write_all(b"real server says: ")
        .and_then(|_| conn.write_all(&req))
        .map_err(|e| format!("server write: {e}"))?;
    Ok(peer)
}

/// Runs `f` on a thread of its own in a new, empty network namespace
/// (`unshare(CLONE_NEWNET)` on that thread only; the namespace goes with
/// it). `BPF_PROG_TEST_RUN` runs in the caller's namespace, and the
/// programs' FIB lookups with it: in a new namespace forwarding is off, so
/// a NAT reply's lookup answers FWD_DISABLED whatever the host's routes and
/// sysctls, and commands spawned from `f` (`ip`) act on that namespace.
pub fn in_private_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET) for a private network namespace");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// CRC32c (Castagnoli, reflected, as SCTP uses it: RFC 9260 appendix A),
/// bit by bit from its definition.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// An SCTP packet: the common header (verification tag `vtag`) and
/// `chunks` (type, flags, value; each padded to four bytes), with its
/// CRC32c (stored least significant byte first, as the kernel stores it).
pub fn sctp(sport: u16, dport: u16, vtag: u32, chunks: &[(u8, u8, &[u8])]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&vtag.to_be_bytes());
    s.extend_from_slice(&[0; 4]);
    for &(ty, flags, value) in chunks {
        s.extend_from_slice(&[ty, flags]);
        s.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
        s.extend_from_slice(value);
        while s.len() % 4 != 0 {
            s.push(0);
        }
    }
    let c = crc32c(&s);
    s[8..12].copy_from_slice(&c.to_le_bytes());
    s
}

/// Whether an SCTP packet's CRC32c is right.
pub fn sctp_crc_ok(l4: &[u8]) -> bool {
    let mut s = l4.to_vec();
    let got = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
    s[8..12].fill(0);
    got == crc32c(&s)
}
