//! Rust mirrors of `bpf/include/structs.h`.
//!
//! Each struct is `#[repr(C)]` with the same fields, in the same order, with
//! no implicit padding; the `const` assertions below fail the build if a size
//! drifts from the C side. Multi-byte address and port fields hold network
//! byte order, exactly as the kernel map stores them.

use std::net::IpAddr;

/// `XVS_AF_INET`
pub const AF_INET: u8 = 2;
/// `XVS_AF_INET6`
pub const AF_INET6: u8 = 10;

/// Map names in the object (`maps.h`).
pub mod name {
    /// Services: `SvcKey` -> `SvcInfo`.
    pub const SERVICES: &str = "xvs_services";
    /// Service id -> `DestList`.
    pub const DEST_LISTS: &str = "xvs_dest_lists";
    /// Real server id -> `Real`.
    pub const REALS: &str = "xvs_reals";
    /// Real server id -> `RealState`.
    pub const REAL_STATE: &str = "xvs_real_state";
    /// Real server id -> `LIVE_F_*` flags (array).
    pub const REAL_LIVE: &str = "xvs_real_live";
    /// Service id -> `SchedState`.
    pub const SCHED_STATE: &str = "xvs_sched_state";
    /// Service id -> `Htab`.
    pub const HTAB: &str = "xvs_htab";
    /// `ConnKey` -> `Conn`.
    pub const CONNS: &str = "xvs_conns";
    /// Reply `ConnKey` -> the connection's `ConnKey`.
    pub const CONNS_OUT: &str = "xvs_conns_out";
    /// The single `Config`.
    pub const CONFIG: &str = "xvs_config";
    /// Per-CPU `Stats` by service id (array).
    pub const SVC_STATS: &str = "xvs_svc_stats";
    /// Per-CPU `Stats` by real server id (array).
    pub const REAL_STATS: &str = "xvs_real_stats";
    /// Per-CPU total `Stats`.
    pub const TOTAL_STATS: &str = "xvs_total_stats";
    /// Per-CPU flow cache: `struct xvs_flow` by set and way (not pinned).
    pub const FLOW_CACHE: &str = "xvs_flow_cache";
    /// Events for user space: a ring buffer of `struct xvs_event` (not
    /// pinned).
    pub const EVENTS: &str = "xvs_events";
    /// Per-CPU packet counters (`counter::*`).
    pub const COUNTERS: &str = "xvs_counters";
    /// Valid templates: `TplKey` -> template id.
    pub const TPL_INDEX: &str = "xvs_tpl_index";
    /// Templates: id -> `Tpl`.
    pub const TPLS: &str = "xvs_tpls";
    /// Sequence numbers (`u64`): template ids, twos test-draw position.
    pub const SEQ: &str = "xvs_seq";
    /// twos test draws (`u32`), used when `Config::rand_fixed` is set.
    pub const RAND: &str = "xvs_rand";
    /// lblc cache: `LblKey` -> `LblcEntry`.
    pub const LBLC: &str = "xvs_lblc";
    /// lblcr cache: `LblKey` -> `LblcrSet`.
    pub const LBLCR: &str = "xvs_lblcr";
}

/// Slots of the twos test-draw array (`XVS_RAND_SLOTS`).
pub const RAND_SLOTS: u32 = 65536;
/// `xvs_seq` index of the last template id.
pub const SEQ_TPL: u32 = 0;
/// `xvs_seq` index of the next twos test draw.
pub const SEQ_RAND: u32 = 1;
/// `xvs_seq` index of the last service id handed out (user space only).
pub const SEQ_SVC: u32 = 2;
/// `xvs_seq` index of the last real-server slot handed out (user space only).
pub const SEQ_SLOT: u32 = 3;
/// Ways of a flow-cache set (`XVS_FLOW_WAYS`).
pub const FLOW_WAYS: u32 = 8;
/// `tpl.flags`: invalidated (no longer in the index).
pub const TPL_F_INVALID: u8 = 0x1;

/// Real servers per service (`XVS_MAX_DESTS`).
pub const MAX_DESTS: usize = 256;
/// Slots of a hashing scheduler's table (`XVS_HTAB_SIZE`).
pub const HTAB_SIZE: usize = 4093;
/// `svc_info.flags`: persistent service.
pub const SVC_F_PERSISTENT: u32 = 0x1;
/// `svc_info.flags`: one-packet scheduling.
pub const SVC_F_ONEPACKET: u32 = 0x4;
/// `real.flags`: listed in its service.
pub const REAL_F_AVAILABLE: u32 = 0x1;
/// `xvs_real_live`: listed in its service (`REAL_F_AVAILABLE`).
pub const LIVE_F_AVAILABLE: u32 = 0x1;
/// `xvs_real_live`: forwarding needs the `Real` (explicit next hop, tunnel).
pub const LIVE_F_REAL: u32 = 0x2;
/// `xvs_real_live`: the service id is the word shifted right by this.
pub const LIVE_SVC_SHIFT: u32 = 8;
/// Services the datapath holds (`XVS_MAX_SERVICES`); ids are below it.
pub const MAX_SERVICES: u32 = 16384;
/// Real servers the datapath holds, listed or in the trash
/// (`XVS_MAX_REALS`); ids are below it.
pub const MAX_REALS: u32 = 262144;
/// `conn.flags`: counted in InActConn.
pub const CONN_F_INACTIVE: u8 = 0x1;
/// `conn.flags`: no reply seen on a non-NAT connection.
pub const CONN_F_NO_OUTPUT: u8 = 0x8;

/// Transport protocol of a service, with its IP protocol number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Proto {
    /// `IPPROTO_TCP` (ipvsadm `-t`).
    Tcp = 6,
    /// `IPPROTO_UDP` (ipvsadm `-u`).
    Udp = 17,
    /// `IPPROTO_SCTP` (ipvsadm `--sctp-service`).
    Sctp = 132,
}

/// `struct svc_key`: a virtual service (family, protocol, VIP, port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct SvcKey {
    /// VIP in network byte order; IPv4 uses `addr[0]` only.
    pub addr: [u32; 4],
    /// Port in network byte order.
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u8,
}

impl SvcKey {
    /// The key of fwmark service `mark` (`-f`): protocol and port 0, the
    /// mark in host order in `addr[0]`.
    pub fn fwmark(family: u8, mark: u32) -> Self {
        Self {
            addr: [mark, 0, 0, 0],
            port: 0,
            proto: 0,
            family,
        }
    }

    /// The key for `proto vip:port`.
    pub fn new(proto: Proto, vip: IpAddr, port: u16) -> Self {
        let (addr, family) = addr_words(vip);
        Self {
            addr,
            port: port.to_be(),
            proto: proto as u8,
            family,
        }
    }
}

/// `struct svc_info`: a service's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SvcInfo {
    /// Stable service id (key of the per-service maps).
    pub id: u32,
    /// Scheduler (`SchedulerKind` index).
    pub sched: u32,
    /// `IP_VS_SVC_F_*`.
    pub flags: u32,
    /// Persistence timeout, seconds.
    pub timeout: u32,
    /// Persistence netmask.
    pub netmask: u32,
    /// 0.
    pub pad: u32,
}

/// `struct dest_ref`: one list entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DestRef {
    /// Real server id.
    pub id: u32,
    /// Its weight.
    pub weight: i32,
}

/// `struct dest_list`: a service's real servers, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct DestList {
    /// Entries in use.
    pub n: u32,
    /// 0.
    pub pad: u32,
    /// The entries.
    pub d: [DestRef; MAX_DESTS],
}

/// `struct real`: a real server's configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Real {
    /// Address (network order words; IPv4 in `addr[0]`).
    pub addr: [u32; 4],
    /// Port, network order.
    pub port: u16,
    /// Forwarding method (`FwdMethod::kernel_value`).
    pub fwd: u8,
    /// Address family.
    pub family: u8,
    /// Weight.
    pub weight: i32,
    /// `-x`.
    pub u_threshold: u32,
    /// `-y`.
    pub l_threshold: u32,
    /// [`REAL_F_AVAILABLE`].
    pub flags: u32,
    /// The service's id.
    pub svc_id: u32,
    /// 0 ipip, 1 gue, 2 gre.
    pub tun_type: u8,
    /// 0 nocsum, 1 csum, 2 remcsum.
    pub tun_flags: u8,
    /// Tunnel port, network order.
    pub tun_port: u16,
    /// Next-hop destination MAC.
    pub mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Egress interface, 0 = the ingress one.
    pub ifindex: u32,
    /// 0.
    pub pad: u32,
    /// TUN: outer source address (network order words; IPv4 in `[0]`); all
    /// zero = no tunnel source, TUN packets go to the stack unchanged.
    pub tun_saddr: [u32; 4],
    /// TUN: MTU toward the real server (host order), 0 = no check.
    pub tun_mtu: u16,
    /// 0.
    pub pad2: u16,
}

/// `struct real_state`: connection counts of a real server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RealState {
    /// ActiveConn.
    pub active: i32,
    /// InActConn.
    pub inactive: i32,
    /// PersistConn.
    pub persist: i32,
    /// Overload flag.
    pub overloaded: u32,
}

/// `struct sched_state`: rr/wrr state (the first word is the spin lock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SchedState {
    /// `struct bpf_spin_lock`, never touched by user space.
    pub lock: u32,
    /// Real server id picked last, 0 = list head.
    pub cl: u32,
    /// wrr current weight.
    pub cw: i32,
    /// wrr max weight - (di - 1).
    pub mw: i32,
    /// wrr gcd.
    pub di: i32,
    /// 0.
    pub pad: u32,
}

/// Array length of `struct htab` (`XVS_HTAB_SLOTS`), a power of two.
pub const HTAB_SLOTS: usize = 4096;

/// `struct htab`: an sh/dh/mh table of real server ids (0 = empty); only the
/// first 256 (sh, dh) or [`HTAB_SIZE`] (mh) slots are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Htab {
    /// The slots.
    pub slot: [u32; HTAB_SLOTS],
}

/// `struct conn_key`: a tuple as seen on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct ConnKey {
    /// Source address.
    pub saddr: [u32; 4],
    /// Destination address.
    pub daddr: [u32; 4],
    /// Source port, network order.
    pub sport: u16,
    /// Destination port, network order.
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
    /// Address family.
    pub family: u8,
    /// 0.
    pub pad: u16,
}

/// `struct conn`: a connection entry. What an established packet uses is
/// in its first 32 bytes, which share a cache line with the key's end in
/// the kernel's hash-map element (see `structs.h`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Conn {
    /// Deadline on the `CLOCK_MONOTONIC_COARSE` clock, ns.
    pub expires: u64,
    /// Real server id.
    pub real_id: u32,
    /// TCP state index (0 for UDP).
    pub state: u8,
    /// `CONN_F_*`.
    pub flags: u8,
    /// Forwarding method.
    pub fwd: u8,
    /// Family.
    pub family: u8,
    /// Real server address.
    pub daddr: [u32; 4],
    /// Real server port, network order.
    pub dport: u16,
    /// 0.
    pub pad: u16,
    /// Service id.
    pub svc_id: u32,
    /// Id of the controlling template, 0 = none.
    pub control: u32,
    /// `struct bpf_spin_lock` (BPF-side only).
    pub lock: u32,
}

/// `struct tpl_key`: what a persistence template is found by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct TplKey {
    /// Masked client address.
    pub caddr: [u32; 4],
    /// VIP, or the fwmark (network order) for fwmark templates.
    pub vaddr: [u32; 4],
    /// Service port or 0, network order.
    pub vport: u16,
    /// IP protocol, 0 for fwmark templates.
    pub proto: u8,
    /// Family.
    pub family: u8,
}

/// `struct tpl`: a persistence template.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Tpl {
    /// Deadline, ns on the datapath clock.
    pub expires: u64,
    /// Real server id.
    pub real_id: u32,
    /// Service id.
    pub svc_id: u32,
    /// Real server address.
    pub daddr: [u32; 4],
    /// `template_dport()`, network order; 0xffff once invalidated.
    pub dport: u16,
    /// Forwarding method.
    pub fwd: u8,
    /// [`TPL_F_INVALID`].
    pub flags: u8,
    /// Seconds: the persistence timeout, or 60 after a delayed expiry.
    pub timeout: u32,
    /// Connections it controls.
    pub n_control: u32,
    /// Its key.
    pub key: TplKey,
    /// Its id.
    pub id: u32,
    /// 0.
    pub pad: u32,
}

/// `struct lbl_key`: lblc/lblcr cache key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct LblKey {
    /// Service id.
    pub svc_id: u32,
    /// Destination address.
    pub addr: [u32; 4],
}

/// `struct lblc_entry`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct LblcEntry {
    /// Real server id.
    pub real_id: u32,
    /// 0.
    pub pad: u32,
    /// Last use, ns on the datapath clock.
    pub lastuse: u64,
}

/// `struct lblcr_member`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct LblcrMember {
    /// Real server id.
    pub id: u32,
    /// Weight last seen.
    pub weight: i32,
}

/// `struct lblcr_set`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct LblcrSet {
    /// Last use, ns.
    pub lastuse: u64,
    /// Last change of the set, ns.
    pub lastmod: u64,
    /// Members in use.
    pub n: u32,
    /// 0.
    pub pad: u32,
    /// Members, most recently added first.
    pub m: [LblcrMember; MAX_DESTS],
}

/// `struct xvs_config`: timeouts and sysctls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Config {
    /// Seconds, by TCP state.
    pub tcp_timeout: [u32; 16],
    /// UDP timeout.
    pub udp_timeout: u32,
    /// `conn_reuse_mode`.
    pub conn_reuse_mode: u32,
    /// `expire_nodest_conn`.
    pub expire_nodest_conn: u32,
    /// `sloppy_tcp`.
    pub sloppy_tcp: u32,
    /// `expire_quiescent_template`.
    pub expire_quiescent_template: u32,
    /// Test hook: twos takes its draws from `xvs_rand`.
    pub rand_fixed: u32,
    /// `lblcr_expiration`, seconds.
    pub lblcr_expiration: u32,
    /// Sets of the flow cache (a power of two; 0: no flow cache).
    pub flow_sets: u32,
    /// Test hook: the clock in ns if not 0 (else `bpf_ktime_get_coarse_ns`).
    pub now_ns: u64,
    /// The kernel's HZ (measured at load: [`crate::Datapath::clock_hz`]): ticks a second of
    /// the flow and hop caches' clock, jiffies. 0: nothing is cached.
    pub hz: u32,
    /// `sloppy_sctp`.
    pub sloppy_sctp: u32,
}

/// `struct xvs_stats`: counters of one CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets in (client -> real server).
    pub inpkts: u64,
    /// Packets out (NAT replies).
    pub outpkts: u64,
    /// Bytes in.
    pub inbytes: u64,
    /// Bytes out.
    pub outbytes: u64,
}

/// Indexes of the per-CPU counter array (`enum xvs_counter`).
pub mod counter {
    /// Not for a service, handed on untouched.
    pub const PASSED: u32 = 0;
    /// Client to real server, rewritten and sent on.
    pub const FORWARDED: u32 = 1;
    /// Truncated or invalid headers, handed on untouched.
    pub const MALFORMED: u32 = 2;
    /// New connection without a real server: dropped.
    pub const NO_DEST: u32 = 3;
    /// Connection whose real server was removed: dropped.
    pub const UNAVAILABLE: u32 = 4;
    /// NAT reply rewritten and sent to the client's next hop.
    pub const REPLIED: u32 = 5;
    /// IP fragment handed on untouched (see `Counters::fragment`).
    pub const FRAGMENT: u32 = 6;
    /// Connection table full: dropped.
    pub const CONN_FULL: u32 = 7;
    /// TUN/local connection: tracked, handed to the stack.
    pub const LOCAL: u32 = 8;
    /// TUN: encapsulation failed (over the MTU, no room, GRE, no GUE port): dropped.
    pub const TUN_DROP: u32 = 9;
    /// FIB next hop without a neighbour entry: tc `bpf_redirect_neigh`;
    /// XDP passes it with metadata for the tc program to do that.
    pub const NO_NEIGH: u32 = 10;
    /// FIB lookup failed: dropped (NAT replies: to the stack).
    pub const NO_ROUTE: u32 = 11;
    /// Number of slots (`XVS_CNT_MAX`).
    pub const MAX: u32 = 12;
}

const _: () = assert!(size_of::<SvcKey>() == 20);
const _: () = assert!(size_of::<SvcInfo>() == 24);
const _: () = assert!(size_of::<DestList>() == 8 + 8 * MAX_DESTS);
const _: () = assert!(size_of::<Real>() == 84);
const _: () = assert!(size_of::<RealState>() == 16);
const _: () = assert!(size_of::<SchedState>() == 24);
const _: () = assert!(size_of::<Htab>() == 4 * HTAB_SLOTS);
const _: () = assert!(HTAB_SLOTS >= HTAB_SIZE);
const _: () = assert!(size_of::<ConnKey>() == 40);
const _: () = assert!(size_of::<Conn>() == 48);
const _: () = assert!(size_of::<Config>() == 112);
const _: () = assert!(size_of::<TplKey>() == 36);
const _: () = assert!(size_of::<Tpl>() == 88);
const _: () = assert!(size_of::<LblKey>() == 20);
const _: () = assert!(size_of::<LblcEntry>() == 16);
const _: () = assert!(size_of::<LblcrSet>() == 24 + 8 * MAX_DESTS);
const _: () = assert!(size_of::<Stats>() == 40);

// SAFETY: all of these are #[repr(C)], made only of integers and integer
// arrays, with no padding (checked by the size assertions above), so every
// bit pattern is valid and they can be copied to and from the kernel byte
// for byte.
unsafe impl aya::Pod for SvcKey {}
// SAFETY: as above.
unsafe impl aya::Pod for SvcInfo {}
// SAFETY: as above.
unsafe impl aya::Pod for DestList {}
// SAFETY: as above.
unsafe impl aya::Pod for Real {}
// SAFETY: as above.
unsafe impl aya::Pod for RealState {}
// SAFETY: as above.
unsafe impl aya::Pod for SchedState {}
// SAFETY: as above.
unsafe impl aya::Pod for Htab {}
// SAFETY: as above.
unsafe impl aya::Pod for ConnKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Conn {}
// SAFETY: as above.
unsafe impl aya::Pod for Config {}
// SAFETY: as above.
unsafe impl aya::Pod for Stats {}
// SAFETY: as above.
unsafe impl aya::Pod for TplKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Tpl {}
// SAFETY: as above.
unsafe impl aya::Pod for LblKey {}
// SAFETY: as above.
unsafe impl aya::Pod for LblcEntry {}
// SAFETY: as above.
unsafe impl aya::Pod for LblcrSet {}

/// An address as four network-order words (IPv4 in the first) and its family.
pub fn addr_words(a: IpAddr) -> ([u32; 4], u8) {
    match a {
        IpAddr::V4(a) => ([u32::from_ne_bytes(a.octets()), 0, 0, 0], AF_INET),
        IpAddr::V6(a) => {
            let o = a.octets();
            let mut addr = [0u32; 4];
            for (i, w) in addr.iter_mut().enumerate() {
                *w = u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]);
            }
            (addr, AF_INET6)
        }
    }
}

/// The inverse of [`addr_words`]; `None` for an unknown family.
pub fn words_addr(w: [u32; 4], family: u8) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::from(w[0].to_ne_bytes())),
        AF_INET6 => {
            let mut o = [0u8; 16];
            for (i, x) in w.iter().enumerate() {
                o[4 * i..4 * i + 4].copy_from_slice(&x.to_ne_bytes());
            }
            Some(IpAddr::from(o))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn key_bytes_are_network_order() {
        let k = SvcKey::new(Proto::Tcp, IpAddr::V4(Ipv4Addr::new(198, 18, 2, 1)), 80);
        // SAFETY: SvcKey is Pod with no padding.
        let bytes: [u8; 20] = unsafe { std::mem::transmute(k) };
        assert_eq!(&bytes[..4], &[198, 18, 2, 1]);
        assert_eq!(&bytes[4..16], &[0; 12]);
        assert_eq!(&bytes[16..18], &[0, 80]);
        assert_eq!(bytes[18], 6);
        assert_eq!(bytes[19], AF_INET);
    }

    #[test]
    fn id_limits_are_the_maps_sizes() {
        // user space hands out ids below these; the BPF arrays indexed by
        // them must be exactly that big
        let obj = aya_obj::Object::parse(crate::BPF_OBJECT).expect("the embedded object parses");
        let max = |m: &str| obj.maps.get(m).expect("map in the object").max_entries();
        assert_eq!(max(name::SVC_STATS), MAX_SERVICES);
        assert_eq!(max(name::SERVICES), MAX_SERVICES);
        assert_eq!(max(name::REAL_STATS), MAX_REALS);
        assert_eq!(max(name::REAL_LIVE), MAX_REALS);
        assert_eq!(max(name::REALS), MAX_REALS);
    }
}
