//! Packet rate: a generator of our own (XDP live frames through
//! `BPF_PROG_RUN`), the no-op forwarder that sets the ceiling, and a sink
//! that counts what reaches the real servers' side.
//!
//! ```text
//!  client ns            director ns                          lan ns
//!  c0 <-- xvsb_gen      d0: xvs_xdp | xvsb_fwd_xdp           p-d: xvsb_sink (count, drop)
//!  (BPF_PROG_RUN,           or xvsb_pass + xvs_tc | xvsb_fwd_tc
//!   live frames,        d1 ------------------------------------> p-d
//!   XDP_TX out of c0)
//! ```
//!
//! `xvsb_gen` runs with `BPF_F_TEST_XDP_LIVE_FRAMES` and the client's c0 as
//! the ingress device: each frame gets the next source port of N flows and
//! is sent out of c0 (XDP_TX), so it arrives at the director's d0 like a
//! frame from the client. A veth only takes XDP frames when its peer-side
//! receiver has an XDP program: on d0 that is the program under test (XDP
//! cases) or `xvsb_pass` (tc cases, whose frames then become skbs and meet
//! the tc hook); on p-d, the director's bridge port, the sink. The sink
//! counts frames addressed to a real server's MAC and drops them, so the
//! real servers' stacks stay out of it.
//!
//! Established flows: one SYN per flow first (xvs schedules and tracks the
//! connection), then ACK segments; for UDP the first datagram of a flow
//! creates its entry, so the warm-up sends one per flow too.
//!
//! Everything runs on the CPU that issues `BPF_PROG_RUN`: the generator,
//! then (softirq, when the batch is flushed) d0's NAPI with the program
//! under test, then p-d's NAPI with the sink. The rate measured is the
//! sink's count over the wall time: generator and sink cost are in it for
//! every contender alike.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use aya::{
    maps::{Array, MapData, PerCpuArray},
    programs::{tc, SchedClassifier, TcAttachType, Xdp, XdpMode},
    Ebpf, TestRun, TestRunAttrs, TestRunOptions,
};
use xvs_core::persist::Sysctls;
use xvs_datapath::{Datapath, LoadOptions};
use xvs_testhost::{Error, Result, Role, Topology};

use crate::xvs::{self, Method};

/// The benchmark's BPF object (`bpf/bench.c`).
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench.bpf.o"));

/// Port of the services the generator sends to.
pub const PORT: u16 = 80;
/// First source port of the generated flows.
pub const BASE_PORT: u16 = 10000;

fn err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("packet rate: {what}: {e}"))
}

/// What forwards the frames on the director.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Forwarder {
    /// `xvsb_fwd_xdp` on d0: MAC rewrite + redirect to d1. The ceiling.
    NoopXdp,
    /// `xvsb_ipip_xdp` on d0: the no-op forwarder with TUN's IPIP
    /// encapsulation. The ceiling of any IPIP forwarder.
    NoopIpipXdp,
    /// `xvsb_pass` (XDP) + `xvsb_fwd_tc` on d0 ingress.
    NoopTc,
    /// `xvs_xdp` on d0 (native XDP), the given method.
    XvsXdp(Method),
    /// `xvsb_pass` (XDP) + `xvs_tc` on d0 ingress.
    XvsTc(Method),
}

impl Forwarder {
    pub fn name(self) -> String {
        let m = |m: Method| match m {
            Method::Dr => "dr",
            Method::Nat => "nat",
            Method::Tun => "tun",
        };
        match self {
            Forwarder::NoopXdp => "noop-xdp".into(),
            Forwarder::NoopIpipXdp => "noop-ipip-xdp".into(),
            Forwarder::NoopTc => "noop-tc".into(),
            Forwarder::XvsXdp(x) => format!("xvs-{}-xdp", m(x)),
            Forwarder::XvsTc(x) => format!("xvs-{}-tc", m(x)),
        }
    }

    pub fn parse(s: &str) -> Option<Forwarder> {
        ALL_FORWARDERS.into_iter().find(|f| f.name() == s)
    }

    /// Name of the program on d0 that does the forwarding.
    pub fn prog_name(self) -> &'static str {
        match self {
            Forwarder::NoopXdp => "xvsb_fwd_xdp",
            Forwarder::NoopIpipXdp => "xvsb_ipip_xdp",
            Forwarder::NoopTc => "xvsb_fwd_tc",
            Forwarder::XvsXdp(_) => xvs_datapath::XDP_PROG,
            Forwarder::XvsTc(_) => xvs_datapath::TC_PROG,
        }
    }

    pub fn is_xdp(self) -> bool {
        matches!(
            self,
            Forwarder::NoopXdp | Forwarder::NoopIpipXdp | Forwarder::XvsXdp(_)
        )
    }

    /// The no-op forwarder on the same hook.
    pub fn ceiling(self) -> Forwarder {
        if self.is_xdp() {
            Forwarder::NoopXdp
        } else {
            Forwarder::NoopTc
        }
    }

    /// A no-op forwarder itself (no state, no scheduling).
    pub fn is_noop(self) -> bool {
        matches!(
            self,
            Forwarder::NoopXdp | Forwarder::NoopIpipXdp | Forwarder::NoopTc
        )
    }

    /// The no-op forwarder that also does this one's encapsulation, if it
    /// has one: the ceiling of any forwarder with that encapsulation.
    pub fn encap_ceiling(self) -> Option<Forwarder> {
        match self {
            Forwarder::XvsXdp(Method::Tun) => Some(Forwarder::NoopIpipXdp),
            _ => None,
        }
    }
}

pub const ALL_FORWARDERS: [Forwarder; 7] = [
    Forwarder::NoopXdp,
    Forwarder::XvsXdp(Method::Dr),
    Forwarder::XvsXdp(Method::Nat),
    Forwarder::XvsXdp(Method::Tun),
    Forwarder::NoopIpipXdp,
    Forwarder::NoopTc,
    Forwarder::XvsTc(Method::Dr),
];

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4 {
    Tcp,
    Udp,
}

impl L4 {
    pub fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }
}

/// What the generator sends in a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Traffic {
    /// Established flows: one SYN (UDP: one datagram) per flow first,
    /// then ACK segments (UDP datagrams) of [`RateConfig::flows`] flows in
    /// [`RateConfig::order`].
    Established,
    /// TCP SYNs, each of a flow the director has not seen (client
    /// addresses in [`NEW_FLOW_NET`]): every frame a new connection to
    /// schedule, track and forward.
    NewFlows,
}

impl Traffic {
    pub fn name(self) -> &'static str {
        match self {
            Traffic::Established => "established",
            Traffic::NewFlows => "new",
        }
    }
}

/// Client addresses of [`Traffic::NewFlows`]: 198.19.0.0/16, inside the
/// benchmark range and apart from the lab's own addresses (198.18.0.0/16).
pub const NEW_FLOW_NET: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 0);
/// Source ports per client address of [`Traffic::NewFlows`] (from
/// [`BASE_PORT`]): 50,000 x 65,536 frames before a flow comes round again.
pub const NEW_FLOW_PORTS: u32 = 50_000;

/// One measurement of the packet rate.
#[derive(Clone, Debug, PartialEq)]
pub struct RateSample {
    pub round: u32,
    pub forwarder: Forwarder,
    pub l4: L4,
    pub traffic: Traffic,
    /// Established: the flows; new flows: source ports per address.
    pub flows: u32,
    /// Frames the generator sent.
    pub sent: u64,
    /// Frames that reached the sink addressed to a real server.
    pub received: u64,
    pub seconds: f64,
    /// Mean ns per packet inside the director's program under test (the
    /// kernel's BPF run-time accounting); NaN if unavailable.
    pub prog_ns: f64,
    /// New flows, xvs: connections the datapath made over the whole case
    /// (the measured frames and the ones around them; its total `conns`
    /// counter). 0 otherwise.
    pub conns: u64,
}

impl RateSample {
    /// Received frames per second.
    pub fn pps(&self) -> f64 {
        self.received as f64 / self.seconds
    }
}

// ---- frames ----------------------------------------------------------------

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut c = data.chunks_exact(2);
    for w in &mut c {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = c.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An Ethernet + IPv4 + TCP (flags) or UDP (8 bytes of payload) frame,
/// checksums filled in, padded to 60 bytes (64 on a wire with the FCS).
#[allow(clippy::too_many_arguments)]
pub fn frame(
    dmac: [u8; 6],
    smac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    l4: L4,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
) -> Vec<u8> {
    let mut seg = Vec::new();
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&dport.to_be_bytes());
    let (proto, csum_at) = match l4 {
        L4::Tcp => {
            seg.extend_from_slice(&1u32.to_be_bytes());
            seg.extend_from_slice(&(if tcp_flags & 0x10 != 0 { 1u32 } else { 0 }).to_be_bytes());
            seg.extend_from_slice(&[0x50, tcp_flags]);
            seg.extend_from_slice(&64240u16.to_be_bytes());
            seg.extend_from_slice(&[0, 0, 0, 0]);
            (6u8, 16)
        }
        L4::Udp => {
            seg.extend_from_slice(&16u16.to_be_bytes());
            seg.extend_from_slice(&[0, 0]);
            seg.extend_from_slice(b"xvsbench");
            (17u8, 6)
        }
    };
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    let c = fold(sum16(&seg, sum16(&pseudo, 0)));
    seg[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    let total = 20 + seg.len();
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = fold(sum16(&ip, 0));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&seg);
    f.resize(f.len().max(60), 0);
    f
}

// ---- the bench programs -----------------------------------------------------

/// bench.c's `gen_cfg.mode`.
const GEN_CYCLIC: u32 = 0;
const GEN_RANDOM: u32 = 1;
const GEN_FRESH: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct GenCfg {
    nflows: u32,
    base_port: u32,
    l4_off: u32,
    csum_off: u32,
    mode: u32,
}

// SAFETY: plain data, no padding.
unsafe impl aya::Pod for GenCfg {}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct GenTpl {
    b: [u8; 60],
}
// SAFETY: plain bytes.
unsafe impl aya::Pod for GenTpl {}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct FwdCfg {
    dmac: [[u8; 6]; FWD_MACS],
    smac: [u8; 6],
    pad: [u8; 2],
    ifindex: u32,
    vip: [u8; 4],
    nmacs: u32,
    tun_saddr: [u8; 4],
    tun_daddr: [u8; 4],
}
// SAFETY: plain data, no implicit padding (16 * 6 + 6 + 2 + 4 + 4 + 4 + 4 + 4).
unsafe impl aya::Pod for FwdCfg {}

/// bench.c's XVSB_FWD_MACS.
pub const FWD_MACS: usize = 16;

/// The loaded bench object: dropping it detaches its programs.
pub struct BenchProgs {
    ebpf: Ebpf,
}

impl BenchProgs {
    pub fn load() -> Result<BenchProgs> {
        let mut ebpf = Ebpf::load(BENCH_OBJECT).map_err(|e| err("loading bench.bpf.o", e))?;
        for p in [
            "xvsb_gen",
            "xvsb_fwd_xdp",
            "xvsb_ipip_xdp",
            "xvsb_sink",
            "xvsb_pass",
        ] {
            let x: &mut Xdp = ebpf
                .program_mut(p)
                .ok_or_else(|| err(p, "missing"))?
                .try_into()
                .map_err(|e| err(p, e))?;
            xvs_datapath::load_retrying(|| x.load()).map_err(|e| err(p, format!("{e:?}")))?;
        }
        let t: &mut SchedClassifier = ebpf
            .program_mut("xvsb_fwd_tc")
            .ok_or_else(|| err("xvsb_fwd_tc", "missing"))?
            .try_into()
            .map_err(|e| err("xvsb_fwd_tc", e))?;
        xvs_datapath::load_retrying(|| t.load())
            .map_err(|e| err("xvsb_fwd_tc", format!("{e:?}")))?;
        Ok(BenchProgs { ebpf })
    }

    fn xdp(&self, name: &str) -> Result<&Xdp> {
        self.ebpf
            .program(name)
            .ok_or_else(|| err(name, "missing"))?
            .try_into()
            .map_err(|e| err(name, e))
    }

    /// Attaches XDP program `name` (native) to `iface` of the calling
    /// thread's namespace.
    pub fn attach_xdp(&mut self, name: &str, iface: &str) -> Result<()> {
        let idx = xvs_datapath::ifindex(iface).map_err(|e| err(iface, e))?;
        let x: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| err(name, "missing"))?
            .try_into()
            .map_err(|e| err(name, e))?;
        x.attach_to_if_index(idx, XdpMode::Driver)
            .map_err(|e| err(&format!("attaching {name} to {iface}"), e))?;
        Ok(())
    }

    /// Attaches `xvsb_fwd_tc` to `iface`'s ingress.
    pub fn attach_fwd_tc(&mut self, iface: &str) -> Result<()> {
        let _ = tc::qdisc_add_clsact(iface);
        let t: &mut SchedClassifier = self
            .ebpf
            .program_mut("xvsb_fwd_tc")
            .ok_or_else(|| err("xvsb_fwd_tc", "missing"))?
            .try_into()
            .map_err(|e| err("xvsb_fwd_tc", e))?;
        t.attach(iface, TcAttachType::Ingress)
            .map_err(|e| err(&format!("attaching xvsb_fwd_tc to {iface}"), e))?;
        Ok(())
    }

    /// Configures the no-op forwarders: new MACs (XDP: the first of
    /// `dmacs`; tc: one of them per flow, by source port), egress
    /// `ifindex`, for tc the only destination it forwards (None: every
    /// frame), and for `xvsb_ipip_xdp` the tunnel's source and
    /// destination.
    pub fn set_fwd(
        &mut self,
        dmacs: &[[u8; 6]],
        smac: [u8; 6],
        ifindex: u32,
        vip: Option<Ipv4Addr>,
        tunnel: Option<(Ipv4Addr, Ipv4Addr)>,
    ) -> Result<()> {
        if dmacs.is_empty() || dmacs.len() > FWD_MACS {
            return Err(err(
                "xvsb_fwd_cfg",
                format!("{} MACs (1 to {FWD_MACS})", dmacs.len()),
            ));
        }
        let mut dmac = [[0; 6]; FWD_MACS];
        dmac[..dmacs.len()].copy_from_slice(dmacs);
        let mut a: Array<&mut MapData, FwdCfg> =
            Array::try_from(self.ebpf.map_mut("xvsb_fwd_cfg").unwrap())
                .map_err(|e| err("map", e))?;
        a.set(
            0,
            FwdCfg {
                dmac,
                smac,
                pad: [0; 2],
                ifindex,
                vip: vip.map(|v| v.octets()).unwrap_or_default(),
                nmacs: dmacs.len() as u32,
                tun_saddr: tunnel.map(|t| t.0.octets()).unwrap_or_default(),
                tun_daddr: tunnel.map(|t| t.1.octets()).unwrap_or_default(),
            },
            0,
        )
        .map_err(|e| err("xvsb_fwd_cfg", e))
    }

    fn set_gen(&mut self, nflows: u32, l4: L4, frame: &[u8], mode: u32) -> Result<()> {
        let mut tpl = GenTpl { b: [0; 60] };
        let n = frame.len().min(60);
        tpl.b[..n].copy_from_slice(&frame[..n]);
        let mut t: Array<&mut MapData, GenTpl> =
            Array::try_from(self.ebpf.map_mut("xvsb_gen_tpl").unwrap())
                .map_err(|e| err("map", e))?;
        t.set(0, tpl, 0).map_err(|e| err("xvsb_gen_tpl", e))?;
        let mut a: Array<&mut MapData, GenCfg> =
            Array::try_from(self.ebpf.map_mut("xvsb_gen_cfg").unwrap())
                .map_err(|e| err("map", e))?;
        a.set(
            0,
            GenCfg {
                nflows,
                base_port: BASE_PORT.into(),
                l4_off: 34,
                csum_off: if l4 == L4::Tcp { 16 } else { 6 },
                mode,
            },
            0,
        )
        .map_err(|e| err("xvsb_gen_cfg", e))?;
        let mut s: Array<&mut MapData, u64> =
            Array::try_from(self.ebpf.map_mut("xvsb_gen_seq").unwrap())
                .map_err(|e| err("map", e))?;
        s.set(0, 0, 0).map_err(|e| err("xvsb_gen_seq", e))
    }

    /// Frames generated since the last reset.
    pub fn seq(&self) -> Result<u64> {
        let s: Array<&MapData, u64> =
            Array::try_from(self.ebpf.map("xvsb_gen_seq").unwrap()).map_err(|e| err("map", e))?;
        s.get(&0, 0).map_err(|e| err("xvsb_gen_seq", e))
    }

    /// (frames, frames to a real server) seen by the sink so far.
    pub fn sink(&self) -> Result<(u64, u64)> {
        let a: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.ebpf.map("xvsb_sink_count").unwrap())
                .map_err(|e| err("map", e))?;
        let sum = |i: u32| -> Result<u64> {
            Ok(a.get(&i, 0)
                .map_err(|e| err("xvsb_sink_count", e))?
                .iter()
                .sum())
        };
        Ok((sum(0)?, sum(2)?))
    }

    /// Sends `count` copies of `frame` out of interface `ifindex` (of the
    /// calling thread's namespace) with live frames, each given a flow by
    /// the generator: `reset` starts it over in mode `GEN_*` with `nflows`
    /// source ports from [`BASE_PORT`], None goes on where it was.
    fn send(
        &mut self,
        frame: &[u8],
        ifindex: u32,
        count: u32,
        nflows: u32,
        l4: L4,
        reset: Option<u32>,
    ) -> Result<()> {
        if let Some(mode) = reset {
            self.set_gen(nflows, l4, frame, mode)?;
        }
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let r = self
            .xdp("xvsb_gen")?
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(&ctx),
                repeat: count,
                attrs: TestRunAttrs::new().xdp_live_frames(64),
                ..TestRunOptions::default()
            })
            .map_err(|e| err("BPF_PROG_RUN live frames", format!("{e:?}")))?;
        let _ = r;
        Ok(())
    }
}

// ---- the measurement ---------------------------------------------------------

/// Parameters of the packet-rate run.
#[derive(Clone, Debug)]
pub struct RateConfig {
    pub forwarders: Vec<Forwarder>,
    pub l4s: Vec<L4>,
    pub flows: u32,
    /// Which flow each established-traffic frame belongs to.
    pub order: FlowOrder,
    /// Other numbers of flows to measure `noop-xdp` and `xvs-dr-xdp` (TCP)
    /// at, besides `flows` (see [`run`]).
    pub sweep: Vec<u32>,
    /// Forwarders measured with [`Traffic::NewFlows`] too (TCP).
    pub new_flows: Vec<Forwarder>,
    pub duration: Duration,
    pub repeats: u32,
}

/// The order of the generator's flows in established traffic (the
/// warm-up always goes through them in turn, one SYN each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowOrder {
    /// Frame n belongs to flow n mod flows: each flow comes back exactly
    /// every `flows` frames. Any cache of flows that holds fewer than all
    /// of them, least-recently-used first (a CPU's caches among them),
    /// misses on every frame: the worst case.
    Cyclic,
    /// Each frame belongs to a flow picked pseudo-randomly (the same
    /// sequence every run), as independent flows interleave.
    Random,
}

impl FlowOrder {
    pub fn name(self) -> &'static str {
        match self {
            FlowOrder::Cyclic => "cyclic",
            FlowOrder::Random => "random",
        }
    }

    pub fn parse(s: &str) -> Option<FlowOrder> {
        [FlowOrder::Cyclic, FlowOrder::Random]
            .into_iter()
            .find(|o| o.name() == s)
    }
}

fn mac(t: &Topology, role: Role, ifname: &str) -> [u8; 6] {
    t.plan().iface(role, ifname).expect("lab interface").mac
}

/// Runs one forwarder: sets it up on the director, warms the flows, sends
/// for `duration`, counts at the sink, tears it down.
fn run_one(
    t: &Topology,
    dp: &mut Datapath,
    f: Forwarder,
    l4: L4,
    traffic: Traffic,
    cfg: &RateConfig,
    round: u32,
) -> Result<RateSample> {
    let d = t.director();
    let lan = t.lan().ok_or_else(|| err("lab", "no lan namespace"))?;
    let mut progs = BenchProgs::load()?;
    let d1 = d
        .enter(|| xvs_datapath::ifindex("d1"))?
        .map_err(|e| err("d1", e))?;
    let plan = t.plan();
    let tunnel = plan
        .iface(Role::Director, "d1")
        .and_then(|i| i.addr())
        .zip(plan.server_addrs().first().copied());
    progs.set_fwd(
        &[mac(t, Role::Server(0), "r0")],
        mac(t, Role::Director, "d1"),
        d1,
        None,
        tunnel,
    )?;
    if let Forwarder::XvsXdp(_) | Forwarder::XvsTc(_) = f {
        // xvs takes its next hops from the FIB, as xvsd does: the
        // neighbours must be there, and stay, while the sink swallows ARP.
        xvs::pin_server_neighbours(t)?;
    }
    lan.enter(|| progs.attach_xdp("xvsb_sink", "p-d"))??;
    let mut xvs_att = None;
    if let Forwarder::XvsXdp(m) | Forwarder::XvsTc(m) = f {
        let servers: Vec<IpAddr> = t
            .plan()
            .server_addrs()
            .into_iter()
            .map(IpAddr::V4)
            .collect();
        let vip = IpAddr::V4(t.vip());
        let mut lines = xvs::rules(vip, PORT, &servers, m);
        lines.extend(
            xvs::rules(vip, PORT, &servers, m)
                .into_iter()
                .map(|l| l.replace(" -t ", " -u ")),
        );
        let table = xvs::table(&lines)?;
        let l2 = xvs::l2(t, m)?;
        dp.sync(&table, &Sysctls::default(), &l2)
            .map_err(|e| err("sync", e))?;
    }
    d.enter(|| -> Result<()> {
        match f {
            Forwarder::NoopXdp | Forwarder::NoopIpipXdp => progs.attach_xdp(f.prog_name(), "d0"),
            Forwarder::NoopTc => {
                progs.attach_xdp("xvsb_pass", "d0")?;
                progs.attach_fwd_tc("d0")
            }
            Forwarder::XvsXdp(_) => {
                xvs_att = Some(
                    dp.attach_xdp("d0", XdpMode::Driver)
                        .map_err(|e| err("attach xvs_xdp", e))?,
                );
                Ok(())
            }
            Forwarder::XvsTc(_) => {
                progs.attach_xdp("xvsb_pass", "d0")?;
                xvs_att = Some(dp.attach_tc("d0").map_err(|e| err("attach xvs_tc", e))?);
                Ok(())
            }
        }
    })??;
    let c0 = t
        .client()
        .enter(|| xvs_datapath::ifindex("c0"))?
        .map_err(|e| err("c0", e))?;
    let (dmac, smac) = (mac(t, Role::Director, "d0"), mac(t, Role::Client, "c0"));
    let src = t.plan().client_addr();
    let vip = t.vip();
    let first = frame(dmac, smac, src, vip, l4, BASE_PORT, PORT, 0x02);
    let (est, nflows) = match traffic {
        Traffic::Established => (
            frame(dmac, smac, src, vip, l4, BASE_PORT, PORT, 0x10),
            cfg.flows,
        ),
        Traffic::NewFlows => (
            frame(
                dmac,
                smac,
                NEW_FLOW_NET,
                vip,
                L4::Tcp,
                BASE_PORT,
                PORT,
                0x02,
            ),
            NEW_FLOW_PORTS,
        ),
    };
    let mut result = t.client().enter(|| -> Result<RateSample> {
        let mode = match (traffic, cfg.order) {
            (Traffic::NewFlows, _) => GEN_FRESH,
            (Traffic::Established, FlowOrder::Cyclic) => GEN_CYCLIC,
            (Traffic::Established, FlowOrder::Random) => GEN_RANDOM,
        };
        if traffic == Traffic::Established {
            // Warm-up: one SYN (UDP: one datagram) per flow, twice over in
            // case some were dropped on the way.
            for _ in 0..2 {
                progs.send(&first, c0, nflows, nflows, l4, Some(GEN_CYCLIC))?;
            }
            if std::env::var_os("XVSB_DEBUG").is_some() {
                eprintln!("warm-up: sink {:?}, seq {:?}", progs.sink(), progs.seq());
            }
        }
        // Then the traffic: a short run to settle, then the measured one,
        // in chunks until the duration has passed (new flows: the
        // generator goes on to flows none of these frames had).
        progs.send(&est, c0, 100_000, nflows, l4, Some(mode))?;
        // The rate, without the kernel's BPF run-time accounting (two clock
        // reads around every program run: a cost of its own per packet,
        // the same for every forwarder, that would narrow their gaps).
        let (_, r0) = progs.sink()?;
        let chunk = 250_000u32;
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < cfg.duration {
            progs.send(&est, c0, chunk, nflows, l4, None)?;
            sent += u64::from(chunk);
        }
        let secs = start.elapsed().as_secs_f64();
        let (_, r1) = progs.sink()?;
        // Then the forwarding program's own time per packet, with it.
        let prog = crate::bpfsys::newest_prog(f.prog_name());
        let prog_ns = {
            let _stats = crate::bpfsys::enable_run_time_stats().ok();
            let s0 = prog.as_ref().and_then(|p| crate::bpfsys::run_stats(p.fd));
            progs.send(&est, c0, STATS_PACKETS, nflows, l4, None)?;
            let s1 = prog.as_ref().and_then(|p| crate::bpfsys::run_stats(p.fd));
            match (s0, s1) {
                (Some((t0, c0)), Some((t1, c1))) if c1 > c0 => (t1 - t0) as f64 / (c1 - c0) as f64,
                _ => f64::NAN,
            }
        };
        Ok(RateSample {
            round,
            forwarder: f,
            l4,
            traffic,
            flows: nflows,
            sent,
            received: r1 - r0,
            seconds: secs,
            prog_ns,
            conns: 0,
        })
    })?;
    if let Some(a) = xvs_att {
        let _ = d.enter(|| dp.detach(a));
    }
    drop(progs);
    if let Ok(s) = &result {
        // Every forwarder sends on (nearly) every frame; far fewer at the
        // sink is a broken setup, not a rate (the tc path loses a few).
        if s.received < s.sent / 2 {
            return Err(err(
                &f.name(),
                format!(
                    "only {} of {} frames reached a real server's MAC at the sink ({s:?})",
                    s.received, s.sent
                ),
            ));
        }
    }
    if matches!(f, Forwarder::XvsXdp(_) | Forwarder::XvsTc(_)) {
        match traffic {
            Traffic::Established => {
                let conns = dp.conn_count();
                dp.flush_conns().map_err(|e| err("flush", e))?;
                // The warm-up must have made every flow a tracked connection.
                if let Ok(s) = &result {
                    if (conns as u32) < cfg.flows {
                        return Err(err(
                            &f.name(),
                            format!(
                                "only {conns} of {} flows tracked after the warm-up ({s:?})",
                                cfg.flows
                            ),
                        ));
                    }
                }
            }
            Traffic::NewFlows => {
                // (a datapath of its own, dropped by the caller: no flush)
                let conns = dp.total_stats().map_err(|e| err("counters", e))?.conns;
                if let Ok(s) = &mut result {
                    // Every SYN that reached a real server was a new
                    // connection, scheduled and tracked.
                    if conns < s.received {
                        return Err(err(
                            &f.name(),
                            format!(
                                "{conns} connections made for {} new flows forwarded ({s:?})",
                                s.received
                            ),
                        ));
                    }
                    s.conns = conns;
                }
            }
        }
    }
    result
}

/// The samples as TSV, with a header.
pub fn to_tsv(v: &[RateSample]) -> String {
    let mut s = String::from(
        "round\tforwarder\tproto\ttraffic\tflows\tsent\treceived\tseconds\tpps\tprog_ns\tconns\n",
    );
    for x in v {
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.3}\t{:.0}\t{:.1}\t{}\n",
            x.round,
            x.forwarder.name(),
            x.l4.name(),
            x.traffic.name(),
            x.flows,
            x.sent,
            x.received,
            x.seconds,
            x.pps(),
            x.prog_ns,
            x.conns
        ));
    }
    s
}

/// Packets sent with BPF run-time accounting on, after each measured run,
/// for the forwarding program's ns/packet.
const STATS_PACKETS: u32 = 500_000;

/// The packet-rate part's samples.
#[derive(Clone, Debug, Default)]
pub struct RateRuns {
    /// Every forwarder x L4 at `RateConfig::flows` established flows.
    pub main: Vec<RateSample>,
    /// `noop-xdp` and `xvs-dr-xdp` (TCP) at each of `RateConfig::sweep`.
    pub sweep: Vec<RateSample>,
    /// `RateConfig::new_flows`, TCP, with [`Traffic::NewFlows`].
    pub new_flows: Vec<RateSample>,
}

/// Runs every forwarder × L4 `repeats` times, alternating, at `cfg.flows`
/// flows; then `noop-xdp` and `xvs-dr-xdp` (TCP) at each number of flows in
/// `cfg.sweep` (how the cost of an established flow's packet grows with the
/// flows that share the CPU's caches), the same way; then the
/// `cfg.new_flows` forwarders with new flows.
pub fn run(t: &Topology, cfg: &RateConfig) -> Result<RateRuns> {
    // The connection table and flow cache as xvsd has them by default
    // (the table's size matters: its bucket array is what a lookup misses).
    let mut dp = load()?;
    let est = Traffic::Established;
    let main: Vec<Case> = cfg
        .forwarders
        .iter()
        .flat_map(|f| cfg.l4s.iter().map(move |l| (*f, *l, est, cfg.flows)))
        .collect();
    let sweep: Vec<Case> = cfg
        .sweep
        .iter()
        .flat_map(|&n| {
            [
                (Forwarder::NoopXdp, L4::Tcp, est, n),
                (Forwarder::XvsXdp(Method::Dr), L4::Tcp, est, n),
            ]
        })
        .collect();
    let new_flows: Vec<Case> = cfg
        .new_flows
        .iter()
        .map(|f| (*f, L4::Tcp, Traffic::NewFlows, NEW_FLOW_PORTS))
        .collect();
    Ok(RateRuns {
        main: run_cases(t, &mut dp, cfg, &main)?,
        sweep: run_cases(t, &mut dp, cfg, &sweep)?,
        new_flows: run_cases(t, &mut dp, cfg, &new_flows)?,
    })
}

/// A datapath as xvsd loads it by default.
fn load() -> Result<Datapath> {
    Datapath::load_with(LoadOptions::default())
        .map_err(|e| err("loading the datapath", format!("{e:?}")))
}

/// (forwarder, L4, traffic, flows) of one case.
type Case = (Forwarder, L4, Traffic, u32);

/// Each case `cfg.repeats` times, the order rotated every round. xvs with
/// new flows gets a freshly loaded datapath each time (millions of
/// connections: cheaper to drop than to flush), the rest share `dp`.
fn run_cases(
    t: &Topology,
    dp: &mut Datapath,
    cfg: &RateConfig,
    cases: &[Case],
) -> Result<Vec<RateSample>> {
    let mut out = Vec::new();
    let n = cases.len().max(1);
    for round in 0..cfg.repeats {
        for k in 0..cases.len() {
            let (f, l4, traffic, flows) = cases[(k + round as usize) % n];
            let c = RateConfig {
                flows,
                ..cfg.clone()
            };
            let mut own = None;
            let dp: &mut Datapath = if traffic == Traffic::NewFlows && !f.is_noop() {
                own.insert(load()?)
            } else {
                &mut *dp
            };
            let s = run_one(t, dp, f, l4, traffic, &c, round)?;
            drop(own);
            eprintln!(
                "xvs-bench: rate round {}/{} {:<12} {} {:>11} {:>10.0} pps at the sink ({} sent, {} received), {:.0} ns/packet in {}",
                round + 1,
                cfg.repeats,
                f.name(),
                l4.name(),
                match traffic {
                    Traffic::Established => format!("{flows} flows"),
                    Traffic::NewFlows => "new flows".into(),
                },
                s.pps(),
                s.sent,
                s.received,
                s.prog_ns,
                f.prog_name()
            );
            out.push(s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_valid_checksums_and_names_round_trip() {
        let f = frame(
            [2; 6],
            [4; 6],
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(198, 18, 0, 100),
            L4::Tcp,
            10000,
            80,
            0x02,
        );
        assert_eq!(f.len(), 60);
        assert_eq!(fold(sum16(&f[14..34], 0)), 0);
        let mut pseudo = f[26..34].to_vec();
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        assert_eq!(fold(sum16(&f[34..54], sum16(&pseudo, 0))), 0);
        for x in ALL_FORWARDERS {
            assert_eq!(Forwarder::parse(&x.name()), Some(x));
        }
        assert_eq!(Forwarder::XvsTc(Method::Dr).ceiling(), Forwarder::NoopTc);
    }
}

#[cfg(test)]
mod root_tests {
    use super::*;

    /// One frame through `xvsb_gen` (a test run: what it would send).
    fn generate(p: &BenchProgs, f: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 256];
        let r = p
            .xdp("xvsb_gen")
            .unwrap()
            .test_run(TestRunOptions {
                data_in: Some(f),
                data_out: Some(&mut out),
                ..TestRunOptions::default()
            })
            .unwrap();
        out.truncate(r.data_size_out as usize);
        out
    }

    /// The generator gives consecutive frames consecutive source ports and
    /// keeps the TCP checksum valid. Needs root (loads BPF programs).
    #[test]
    fn generator_cycles_source_ports_with_valid_checksums() {
        xvs_testhost::require_root().expect("needs root");
        let mut p = BenchProgs::load().unwrap();
        let src = Ipv4Addr::new(198, 18, 0, 2);
        let dst = Ipv4Addr::new(198, 18, 0, 100);
        let f = frame([2; 6], [4; 6], src, dst, L4::Tcp, BASE_PORT, 80, 0x10);
        p.set_gen(3, L4::Tcp, &f, GEN_CYCLIC).unwrap();
        let mut ports = Vec::new();
        for _ in 0..4 {
            let out = generate(&p, &f);
            ports.push(u16::from_be_bytes([out[34], out[35]]));
            let want = frame(
                [2; 6],
                [4; 6],
                src,
                dst,
                L4::Tcp,
                ports[ports.len() - 1],
                80,
                0x10,
            );
            assert_eq!(out, want);
        }
        assert_eq!(ports, [BASE_PORT, BASE_PORT + 1, BASE_PORT + 2, BASE_PORT]);
    }

    /// New flows: the generator gives every frame a flow no frame had
    /// before, going on to the next client address once the ports are
    /// used up, and keeps the IP and TCP checksums valid. Needs root.
    #[test]
    fn generator_gives_each_new_flow_frame_a_flow_of_its_own() {
        xvs_testhost::require_root().expect("needs root");
        let mut p = BenchProgs::load().unwrap();
        let dst = Ipv4Addr::new(198, 18, 0, 100);
        let f = frame(
            [2; 6],
            [4; 6],
            NEW_FLOW_NET,
            dst,
            L4::Tcp,
            BASE_PORT,
            80,
            0x02,
        );
        p.set_gen(2, L4::Tcp, &f, GEN_FRESH).unwrap();
        let mut flows = Vec::new();
        for _ in 0..5 {
            let out = generate(&p, &f);
            let src = Ipv4Addr::new(out[26], out[27], out[28], out[29]);
            let port = u16::from_be_bytes([out[34], out[35]]);
            // byte for byte the frame built for that flow: checksums too
            let want = frame([2; 6], [4; 6], src, dst, L4::Tcp, port, 80, 0x02);
            assert_eq!(out, want, "{src}:{port}");
            flows.push((src, port));
        }
        let a = |n: u8| Ipv4Addr::new(198, 19, 0, n);
        assert_eq!(
            flows,
            [
                (a(0), BASE_PORT),
                (a(0), BASE_PORT + 1),
                (a(1), BASE_PORT),
                (a(1), BASE_PORT + 1),
                (a(2), BASE_PORT),
            ]
        );
    }
}
