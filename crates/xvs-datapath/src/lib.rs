//! The eBPF datapath of xvs.
//!
//! The BPF programs are C (`bpf/`), compiled by clang in `build.rs` and
//! embedded in this crate. [`Datapath::load`] loads them with aya; the rest of
//! the API fills the service map, attaches the programs to interfaces (XDP for
//! NICs, tc clsact ingress for veths and containers), reads counters, and runs
//! packets through a program without attaching it ([`Datapath::test_run`],
//! `BPF_PROG_TEST_RUN`), which is what the fixture tests use.
//!
//! The programs track connections, schedule new ones in the kernel and
//! forward by direct routing (DR) or NAT; [`Datapath::sync`] derives every
//! map entry from an [`xvs_core::table::IpvsTable`]. See the crate README.

pub mod decap;
pub mod events;
mod list;
pub mod maps;
pub mod pin;
mod sync;

use std::{ffi::CStr, io, path::PathBuf};

pub use aya::programs::XdpMode;
use aya::{
    maps::{Array, HashMap, MapData, MapError, PerCpuArray},
    programs::{
        tc::SchedClassifierLinkId,
        tc::{self, TcError},
        xdp::XdpLinkId,
        ProgramError, SchedClassifier, TcAttachType, Xdp,
    },
    Ebpf, EbpfError, EbpfLoader, TestRun, TestRunOptions,
};

pub use events::{Event, EventKind, Events};
pub use maps::{Proto, SvcKey};
pub use pin::{
    ensure_bpffs, ensure_bpffs_at, tc_ingress_programs, unpin_dir, Hook, PinnedAttachment,
    PINNED_MAPS,
};
pub use sync::{NextHop, L2};

use maps::{
    name, Config, Conn, ConnKey, DestList, Htab, LblKey, LblcEntry, LblcrSet, Real, RealState,
    SchedState, Stats, SvcInfo, Tpl, TplKey,
};

/// The compiled BPF object (`bpf/xvs.c`), 8-byte aligned as aya requires.
pub static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xvs.bpf.o"));

/// Name of the XDP program in the object.
pub const XDP_PROG: &str = "xvs_xdp";
/// Name of the tc (`SchedClassifier`) program in the object.
pub const TC_PROG: &str = "xvs_tc";
/// Name of the control program (expiry, overload reset) run by user space
/// through `BPF_PROG_TEST_RUN`.
pub const CTL_PROG: &str = "xvs_ctl";

/// Default size of the connection table (and of its NAT reply index).
pub const DEFAULT_MAX_CONNS: u32 = 10_000_000;

/// Program return codes, as the kernel defines them.
pub mod verdict {
    /// `XDP_ABORTED`
    pub const XDP_ABORTED: u32 = 0;
    /// `XDP_DROP`
    pub const XDP_DROP: u32 = 1;
    /// `XDP_PASS`
    pub const XDP_PASS: u32 = 2;
    /// `XDP_TX`
    pub const XDP_TX: u32 = 3;
    /// `XDP_REDIRECT`
    pub const XDP_REDIRECT: u32 = 4;
    /// `TC_ACT_OK`
    pub const TC_ACT_OK: u32 = 0;
    /// `TC_ACT_SHOT`
    pub const TC_ACT_SHOT: u32 = 2;
    /// `TC_ACT_REDIRECT`
    pub const TC_ACT_REDIRECT: u32 = 7;
}

/// Errors of the datapath API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Parsing or loading the object failed.
    #[error("loading the BPF object: {0}")]
    Ebpf(#[from] EbpfError),
    /// A program failed to load (verifier), attach, detach or run.
    #[error("BPF program {prog}: {source}")]
    Program {
        /// Program name.
        prog: &'static str,
        /// What aya reported; for a verifier rejection its log is in here.
        source: ProgramError,
    },
    /// A map operation failed.
    #[error("BPF map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// What aya reported.
        source: MapError,
    },
    /// Adding the clsact qdisc failed.
    #[error("adding the clsact qdisc to {iface}: {source}")]
    Qdisc {
        /// Interface name.
        iface: String,
        /// What aya reported.
        source: TcError,
    },
    /// The object lacks a program or map this crate expects.
    #[error("BPF object has no {0}")]
    Missing(&'static str),
    /// An interface name or index does not exist (in this thread's network namespace).
    #[error("interface {0}: {1}")]
    Interface(String, io::Error),
    /// Reading the per-CPU counters failed.
    #[error("reading counters: {0}")]
    Counters(MapError),
    /// Something the datapath does not handle yet.
    #[error("not supported yet: {0}")]
    Unsupported(&'static str),
    /// A rule the datapath cannot carry out yet (so it refuses to load it
    /// rather than mis-schedule): says which service and why.
    #[error("the datapath cannot load {0}")]
    Refused(String),
    /// A file system operation on the pin directory or bpffs failed.
    #[error("{what} {path}: {source}")]
    Fs {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Pinning an object on bpffs failed.
    #[error("pinning {path}: {source}")]
    Pin {
        /// The pin path.
        path: PathBuf,
        /// What aya reported.
        source: aya::pin::PinError,
    },
    /// A pinned link could not be opened, converted or queried.
    #[error("pinned link {path}: {source}")]
    Link {
        /// The pin path.
        path: PathBuf,
        /// What aya reported.
        source: aya::programs::links::LinkError,
    },
    /// Maps pinned by a previous run do not fit this load (another
    /// `max_conns`, another build's layout): says which and what to do.
    #[error("{0}")]
    PinMismatch(String),
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> Error {
    move |source| Error::Map { map, source }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An interface, by name or by index, resolved in the network namespace of the
/// calling thread.
#[derive(Clone, Copy, Debug)]
pub enum Iface<'a> {
    /// Interface name, e.g. `eth0`.
    Name(&'a str),
    /// Interface index.
    Index(u32),
}

impl<'a> From<&'a str> for Iface<'a> {
    fn from(name: &'a str) -> Self {
        Iface::Name(name)
    }
}

impl From<u32> for Iface<'_> {
    fn from(index: u32) -> Self {
        Iface::Index(index)
    }
}

impl Iface<'_> {
    /// The interface's name.
    pub fn name(&self) -> Result<String> {
        match *self {
            Iface::Name(n) => Ok(n.to_string()),
            Iface::Index(i) => {
                let mut buf = [0u8; libc::IF_NAMESIZE];
                // SAFETY: buf holds IF_NAMESIZE bytes, as if_indextoname requires;
                // on success it writes a NUL-terminated name into it.
                let p = unsafe { libc::if_indextoname(i, buf.as_mut_ptr().cast()) };
                if p.is_null() {
                    return Err(Error::Interface(
                        format!("#{i}"),
                        io::Error::last_os_error(),
                    ));
                }
                let name = CStr::from_bytes_until_nul(&buf).expect("if_indextoname writes a NUL");
                Ok(name.to_string_lossy().into_owned())
            }
        }
    }

    /// The interface's index.
    pub fn index(&self) -> Result<u32> {
        match *self {
            Iface::Index(i) => Ok(i),
            Iface::Name(n) => ifindex(n),
        }
    }
}

/// Index of the interface `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|e| {
        Error::Interface(
            name.to_string(),
            io::Error::new(io::ErrorKind::InvalidInput, e),
        )
    })?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(Error::Interface(
            name.to_string(),
            io::Error::last_os_error(),
        ));
    }
    Ok(i)
}

/// Which program of the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prog {
    /// The XDP program ([`XDP_PROG`]).
    Xdp,
    /// The tc clsact program ([`TC_PROG`]).
    Tc,
}

/// A live attachment, to pass to [`Datapath::detach`].
#[derive(Debug)]
pub enum Attachment {
    /// An XDP attachment.
    Xdp(XdpLinkId),
    /// A tc attachment (tcx link on kernels >= 6.6, netlink filter before).
    Tc(SchedClassifierLinkId),
}

/// Sum over all CPUs of the datapath's packet counters. Every packet a
/// program sees is counted in exactly one of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets not for a service, handed on untouched.
    pub passed: u64,
    /// Client packets rewritten (DR/NAT) and sent to a real server.
    pub forwarded: u64,
    /// Packets with truncated or invalid headers, handed on untouched.
    pub malformed: u64,
    /// New connections no real server could take: dropped (XDP, IPv4:
    /// answered with an ICMP port unreachable, rate-limited).
    pub no_dest: u64,
    /// Packets of connections whose real server was removed: dropped.
    pub unavailable: u64,
    /// NAT replies rewritten to the VIP and sent straight to the client's
    /// next hop (from the FIB).
    pub replied: u64,
    /// IP fragments handed on untouched: IPv4 TCP/UDP fragments after the
    /// first of a datagram whose first fragment was not forwarded (not
    /// seen, or not for a service), other protocols' and IPv6 fragments.
    pub fragment: u64,
    /// New connections dropped because the connection table was full.
    pub conn_full: u64,
    /// Tracked local connections (and TUN ones without a tunnel source,
    /// [`L2::tun_saddr`]) handed to the stack unchanged.
    pub local: u64,
    /// TUN packets that could not be encapsulated (over the tunnel's MTU,
    /// the client told as for `no_route`; no room, GRE, GUE without a
    /// port): dropped.
    pub tun_dropped: u64,
    /// Packets whose next hop the FIB found without a neighbour (ARP)
    /// entry: tc sends them with `bpf_redirect_neigh` (the kernel resolves
    /// the neighbour); XDP rewrites them and passes them with metadata to
    /// `xvs_tc` on the same device, which does that (see the README).
    pub no_neigh: u64,
    /// Packets for which `bpf_fib_lookup` found no usable route (no route,
    /// forwarding disabled on the ingress device, no source address):
    /// dropped; NAT replies (rewritten) are handed to the stack instead.
    /// Also DR and NAT packets over the route's MTU: dropped, the client
    /// told with ICMP "fragmentation needed" / "packet too big" (IPv4 with
    /// DF, IPv6); NAT replies over the route's MTU toward the client
    /// likewise, the real server told.
    pub no_route: u64,
}

impl Counters {
    /// Sum of all counters: the number of packets the programs saw.
    pub fn total(&self) -> u64 {
        self.passed
            + self.forwarded
            + self.malformed
            + self.no_dest
            + self.unavailable
            + self.replied
            + self.fragment
            + self.conn_full
            + self.local
            + self.tun_dropped
            + self.no_neigh
            + self.no_route
    }
}

/// Options of [`Datapath::load_with`].
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Entries of the connection table and of the NAT reply index. They are
    /// allocated on demand (BPF_F_NO_PREALLOC), but the bucket arrays are
    /// sized from this: 10 million entries cost about 256 MiB per map.
    pub max_conns: u32,
    /// Pin the state maps ([`PINNED_MAPS`]) in this directory on a bpffs
    /// (e.g. `/sys/fs/bpf/xvs/<instance>`, one per instance; see
    /// [`ensure_bpffs`]), or take over the ones a previous run pinned there
    /// ([`Datapath::adopted`]). `None`: private maps, freed with the
    /// `Datapath`. See the [`pin`] module.
    pub pin_dir: Option<PathBuf>,
    /// Entries of the per-CPU flow cache in front of the connection table
    /// (rounded down to a power of two, at least 8; 0: none). Each costs
    /// 32 bytes on every CPU: the default, [`DEFAULT_FLOW_CACHE`], is 1 MiB
    /// per CPU. It holds established connections to IPv4 real servers,
    /// forwarded by DR, NAT or TUN.
    pub flow_cache: u32,
}

/// Default [`LoadOptions::flow_cache`]: 32768 entries (4096 sets of 8).
/// Entries land in sets by hash, so a set overflows (and its flows take
/// turns missing, each miss a lookup in the connection table) well before
/// the cache is full: the bench's 10,000 flows on one CPU leave 421 of them
/// in overflowing sets with 8192 sets of 4, 72 with 4096 sets of 8, which
/// also hold them in fewer cache lines (376 KiB against 424).
pub const DEFAULT_FLOW_CACHE: u32 = 32768;

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            max_conns: DEFAULT_MAX_CONNS,
            pin_dir: None,
            flow_cache: DEFAULT_FLOW_CACHE,
        }
    }
}

impl LoadOptions {
    /// Sets of the flow cache these options give (0: none).
    fn flow_sets(&self) -> u32 {
        let sets = self.flow_cache / maps::FLOW_WAYS;
        if sets == 0 {
            0
        } else {
            1 << (31 - sets.leading_zeros())
        }
    }

    /// The defaults with a connection table of `max_conns` entries.
    pub fn with_max_conns(max_conns: u32) -> Self {
        Self {
            max_conns,
            ..Self::default()
        }
    }
}

/// The pin directory of a pinned datapath.
#[derive(Debug)]
struct PinState {
    dir: PathBuf,
    /// State from a previous run was found and taken over.
    adopted: bool,
}

/// What one `BPF_PROG_TEST_RUN` of a packet gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The program's return value (see [`verdict`]).
    pub verdict: u32,
    /// The packet as the program left it.
    pub packet: Vec<u8>,
}

/// The loaded datapath: the programs loaded (verified) in the kernel, their
/// maps, and their attachments. Dropping it detaches everything but the
/// pinned attachments ([`Datapath::attach_pinned_tc`],
/// [`Datapath::attach_pinned_xdp`]), which stay with the pinned maps for the
/// next run to take over (see the [`pin`] module).
pub struct Datapath {
    ebpf: Ebpf,
    services: HashMap<MapData, SvcKey, SvcInfo>,
    dest_lists: HashMap<MapData, u32, DestList>,
    reals: HashMap<MapData, u32, Real>,
    real_state: HashMap<MapData, u32, RealState>,
    real_live: Array<MapData, u32>,
    sched_state: HashMap<MapData, u32, SchedState>,
    htab: HashMap<MapData, u32, Htab>,
    conns: HashMap<MapData, ConnKey, Conn>,
    conns_out: HashMap<MapData, ConnKey, ConnKey>,
    config: Array<MapData, Config>,
    svc_stats: PerCpuArray<MapData, Stats>,
    real_stats: PerCpuArray<MapData, Stats>,
    total_stats: PerCpuArray<MapData, Stats>,
    counters: PerCpuArray<MapData, u64>,
    tpl_index: HashMap<MapData, TplKey, u32>,
    tpls: HashMap<MapData, u32, Tpl>,
    seq: Array<MapData, u64>,
    rand: Array<MapData, u32>,
    lblc: HashMap<MapData, LblKey, LblcEntry>,
    lblcr: HashMap<MapData, LblKey, LblcrSet>,
    nr_cpus: usize,
    flow_sets: u32,
    /// The kernel's HZ, for the caches' clock (`Config::hz`).
    hz: u32,
    sync: sync::SyncState,
    hooks: sync::TestHooks,
    pin: Option<PinState>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath").finish_non_exhaustive()
    }
}

/// Runs `load` (a program's `load()`) again while the kernel answers
/// EAGAIN, up to five times in all, as libbpf does: the verifier gives up
/// with EAGAIN when the loading thread has a signal pending, before it has
/// looked at the program (seen here once in a CI run, "processed 1 insns").
pub fn load_retrying(
    mut load: impl FnMut() -> std::result::Result<(), ProgramError>,
) -> std::result::Result<(), ProgramError> {
    let mut attempt = 1;
    loop {
        match load() {
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempt < 5 =>
            {
                attempt += 1;
            }
            r => return r,
        }
    }
}

fn take<T: TryFrom<aya::maps::Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T> {
    let m = ebpf.take_map(name).ok_or(Error::Missing(name))?;
    T::try_from(m).map_err(map_err(name))
}

impl Datapath {
    /// Loads the embedded object with [`LoadOptions::default`]: creates its
    /// maps and loads the programs (running the verifier). Needs CAP_BPF and
    /// CAP_NET_ADMIN (root).
    pub fn load() -> Result<Self> {
        Self::load_with(LoadOptions::default())
    }

    /// Loads the embedded object with these options. With
    /// [`LoadOptions::pin_dir`], maps pinned there by a previous run are
    /// taken over (checked against this build and `max_conns` first, see
    /// [`Error::PinMismatch`]) and the missing ones are created and pinned.
    pub fn load_with(opts: LoadOptions) -> Result<Self> {
        let mut loader = EbpfLoader::new();
        let nr_cpus =
            aya::util::nr_cpus().map_err(|(_, e)| Error::Interface("possible CPUs".into(), e))?;
        let flow_sets = opts.flow_sets();
        loader
            .map_max_entries(name::CONNS, opts.max_conns)
            .map_max_entries(name::CONNS_OUT, opts.max_conns)
            .map_max_entries(
                name::FLOW_CACHE,
                (flow_sets * maps::FLOW_WAYS * nr_cpus as u32).max(1),
            );
        let mut found = Default::default();
        if let Some(dir) = &opts.pin_dir {
            found = pin::prepare(dir, opts.max_conns)?;
            for &m in PINNED_MAPS {
                loader.map_pin_path(m, dir.join(m));
            }
        }
        let mut ebpf = loader.load(BPF_OBJECT)?;
        let mut dp = Self {
            services: take(&mut ebpf, name::SERVICES)?,
            dest_lists: take(&mut ebpf, name::DEST_LISTS)?,
            reals: take(&mut ebpf, name::REALS)?,
            real_state: take(&mut ebpf, name::REAL_STATE)?,
            real_live: take(&mut ebpf, name::REAL_LIVE)?,
            sched_state: take(&mut ebpf, name::SCHED_STATE)?,
            htab: take(&mut ebpf, name::HTAB)?,
            conns: take(&mut ebpf, name::CONNS)?,
            conns_out: take(&mut ebpf, name::CONNS_OUT)?,
            config: take(&mut ebpf, name::CONFIG)?,
            svc_stats: take(&mut ebpf, name::SVC_STATS)?,
            real_stats: take(&mut ebpf, name::REAL_STATS)?,
            total_stats: take(&mut ebpf, name::TOTAL_STATS)?,
            counters: take(&mut ebpf, name::COUNTERS)?,
            tpl_index: take(&mut ebpf, name::TPL_INDEX)?,
            tpls: take(&mut ebpf, name::TPLS)?,
            seq: take(&mut ebpf, name::SEQ)?,
            rand: take(&mut ebpf, name::RAND)?,
            lblc: take(&mut ebpf, name::LBLC)?,
            lblcr: take(&mut ebpf, name::LBLCR)?,
            ebpf,
            nr_cpus,
            flow_sets,
            hz: 0,
            sync: sync::SyncState::default(),
            hooks: sync::TestHooks::default(),
            pin: opts.pin_dir.map(|dir| PinState {
                adopted: found.contains(name::SERVICES),
                dir,
            }),
        };
        for prog in [XDP_PROG, CTL_PROG] {
            let x = dp.xdp_named_mut(prog)?;
            load_retrying(|| x.load()).map_err(|source| Error::Program { prog, source })?;
        }
        let t = dp.tc_mut()?;
        load_retrying(|| t.load()).map_err(|source| Error::Program {
            prog: TC_PROG,
            source,
        })?;
        dp.hz = dp.kernel_hz()?;
        // A pinned configuration is the previous run's: kept until the
        // next sync rewrites it, but for the flow cache's size (and the
        // clock), this run's.
        if !found.contains(name::CONFIG) {
            dp.write_config(
                &xvs_core::conn::Timeouts::default(),
                &xvs_core::persist::Sysctls::default(),
            )?;
        } else {
            let mut c = dp.config.get(&0, 0).map_err(map_err(name::CONFIG))?;
            c.flow_sets = flow_sets;
            c.hz = dp.hz;
            dp.config.set(0, c, 0).map_err(map_err(name::CONFIG))?;
        }
        if dp.adopted() {
            dp.adopt_state()?;
        }
        Ok(dp)
    }

    fn xdp_named(&self, prog: &'static str) -> Result<&Xdp> {
        let p = self.ebpf.program(prog).ok_or(Error::Missing(prog))?;
        p.try_into()
            .map_err(|source| Error::Program { prog, source })
    }

    fn xdp_named_mut(&mut self, prog: &'static str) -> Result<&mut Xdp> {
        let p = self.ebpf.program_mut(prog).ok_or(Error::Missing(prog))?;
        p.try_into()
            .map_err(|source| Error::Program { prog, source })
    }

    fn xdp(&self) -> Result<&Xdp> {
        self.xdp_named(XDP_PROG)
    }

    fn xdp_mut(&mut self) -> Result<&mut Xdp> {
        self.xdp_named_mut(XDP_PROG)
    }

    fn tc(&self) -> Result<&SchedClassifier> {
        let p = self
            .ebpf
            .program(TC_PROG)
            .ok_or(Error::Missing("program xvs_tc"))?;
        p.try_into().map_err(|source| Error::Program {
            prog: TC_PROG,
            source,
        })
    }

    fn tc_mut(&mut self) -> Result<&mut SchedClassifier> {
        let p = self
            .ebpf
            .program_mut(TC_PROG)
            .ok_or(Error::Missing("program xvs_tc"))?;
        p.try_into().map_err(|source| Error::Program {
            prog: TC_PROG,
            source,
        })
    }

    /// The kernel's HZ as measured at load: ticks a second of the clock the
    /// flow and hop caches run on (jiffies).
    pub fn clock_hz(&self) -> u32 {
        self.hz
    }

    /// Attaches the XDP program to `iface` (resolved in the calling thread's
    /// network namespace). Uses a bpf_link where the kernel has it.
    pub fn attach_xdp<'a>(
        &mut self,
        iface: impl Into<Iface<'a>>,
        mode: XdpMode,
    ) -> Result<Attachment> {
        let index = iface.into().index()?;
        self.xdp_mut()?
            .attach_to_if_index(index, mode)
            .map(Attachment::Xdp)
            .map_err(|source| Error::Program {
                prog: XDP_PROG,
                source,
            })
    }

    /// Attaches the tc program to the clsact ingress hook of `iface` (resolved
    /// in the calling thread's network namespace). Adds the clsact qdisc if
    /// it is missing; on kernels >= 6.6 aya attaches through a tcx link,
    /// which does not need it, but a qdisc does no harm and keeps older
    /// kernels working.
    pub fn attach_tc<'a>(&mut self, iface: impl Into<Iface<'a>>) -> Result<Attachment> {
        let name = iface.into().name()?;
        if let Err(source) = tc::qdisc_add_clsact(&name) {
            let exists = matches!(&source, TcError::NetlinkError(e) if e.raw_os_error() == Some(libc::EEXIST))
                || matches!(&source, TcError::AlreadyAttached);
            if !exists {
                return Err(Error::Qdisc {
                    iface: name,
                    source,
                });
            }
        }
        self.tc_mut()?
            .attach(&name, TcAttachType::Ingress)
            .map(Attachment::Tc)
            .map_err(|source| Error::Program {
                prog: TC_PROG,
                source,
            })
    }

    /// Detaches one attachment.
    pub fn detach(&mut self, attachment: Attachment) -> Result<()> {
        match attachment {
            Attachment::Xdp(id) => self.xdp_mut()?.detach(id).map_err(|source| Error::Program {
                prog: XDP_PROG,
                source,
            }),
            Attachment::Tc(id) => self.tc_mut()?.detach(id).map_err(|source| Error::Program {
                prog: TC_PROG,
                source,
            }),
        }
    }

    /// The reading end of the programs' events (see [`events`]), once:
    /// a second call answers [`Error::Missing`]. Events nobody reads are
    /// dropped when the ring is full (64 KiB), never block a packet.
    pub fn take_events(&mut self) -> Result<Events> {
        Ok(Events::new(take(&mut self.ebpf, name::EVENTS)?))
    }

    /// The packet counters, summed over all CPUs.
    pub fn counters(&self) -> Result<Counters> {
        let sum = |idx: u32| -> Result<u64> {
            let v = self.counters.get(&idx, 0).map_err(Error::Counters)?;
            Ok(v.iter().copied().fold(0u64, u64::wrapping_add))
        };
        use maps::counter as c;
        Ok(Counters {
            passed: sum(c::PASSED)?,
            forwarded: sum(c::FORWARDED)?,
            malformed: sum(c::MALFORMED)?,
            no_dest: sum(c::NO_DEST)?,
            unavailable: sum(c::UNAVAILABLE)?,
            replied: sum(c::REPLIED)?,
            fragment: sum(c::FRAGMENT)?,
            conn_full: sum(c::CONN_FULL)?,
            local: sum(c::LOCAL)?,
            tun_dropped: sum(c::TUN_DROP)?,
            no_neigh: sum(c::NO_NEIGH)?,
            no_route: sum(c::NO_ROUTE)?,
        })
    }

    /// Runs `packet` (a whole Ethernet frame) once through `prog` with
    /// `BPF_PROG_TEST_RUN`, without attaching it anywhere, and returns the
    /// verdict and the packet as the program left it. Maps and counters are
    /// the live ones. Actions are not carried out: `XDP_TX` or a redirect is
    /// only a return value here.
    pub fn test_run(&self, prog: Prog, packet: &[u8]) -> Result<TestRunOutput> {
        self.test_run_marked(prog, packet, 0)
    }

    /// [`Datapath::test_run`] with `skb->mark` set to `mark` for the tc
    /// program (a firewall mark, for fwmark services). XDP has no mark: it
    /// is ignored there.
    pub fn test_run_marked(&self, prog: Prog, packet: &[u8], mark: u32) -> Result<TestRunOutput> {
        self.test_run_ctx(prog, packet, mark, 0)
    }

    /// [`Datapath::test_run`] as if `packet` had come in on interface
    /// `ifindex` (of the calling thread's network namespace): XDP's
    /// `ingress_ifindex`, the skb's device for tc. Without it the kernel
    /// runs the program on the namespace's loopback device; with it the
    /// programs' FIB lookups see that device (its forwarding setting, its
    /// routes and neighbours).
    pub fn test_run_on(&self, prog: Prog, packet: &[u8], ifindex: u32) -> Result<TestRunOutput> {
        self.test_run_ctx(prog, packet, 0, ifindex)
    }

    fn test_run_ctx(
        &self,
        prog: Prog,
        packet: &[u8],
        mark: u32,
        ifindex: u32,
    ) -> Result<TestRunOutput> {
        // Room for programs that grow the packet (encapsulation) later.
        let mut out = vec![0u8; packet.len() + 256];
        // tc: struct __sk_buff up to and including ifindex (len, pkt_type
        // must be 0; mark at 8, ifindex at 40). XDP: struct xdp_md (data 0,
        // data_end the frame's length, ingress_ifindex at 12).
        let mut ctx = [0u8; 44];
        let ctx_in = match prog {
            Prog::Tc if mark != 0 || ifindex != 0 => {
                ctx[8..12].copy_from_slice(&mark.to_ne_bytes());
                ctx[40..44].copy_from_slice(&ifindex.to_ne_bytes());
                Some(&ctx[..44])
            }
            Prog::Xdp if ifindex != 0 => {
                ctx[4..8].copy_from_slice(&(packet.len() as u32).to_ne_bytes());
                ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
                Some(&ctx[..24])
            }
            _ => None,
        };
        let opts = || TestRunOptions {
            data_in: Some(packet),
            ctx_in,
            ..TestRunOptions::default()
        };
        let (res, prog_name) = match prog {
            Prog::Xdp => (
                self.xdp()?.test_run(TestRunOptions {
                    data_out: Some(&mut out),
                    ..opts()
                }),
                XDP_PROG,
            ),
            Prog::Tc => (
                self.tc()?.test_run(TestRunOptions {
                    data_out: Some(&mut out),
                    ..opts()
                }),
                TC_PROG,
            ),
        };
        let res = res.map_err(|source| Error::Program {
            prog: prog_name,
            source,
        })?;
        out.truncate(res.data_size_out as usize);
        Ok(TestRunOutput {
            verdict: res.return_value,
            packet: out,
        })
    }
}

#[cfg(test)]
mod load_retry_tests {
    use std::{cell::Cell, io};

    use aya::programs::ProgramError;

    use super::load_retrying;

    fn load_error(errno: i32) -> ProgramError {
        ProgramError::LoadError {
            io_error: io::Error::from_raw_os_error(errno),
            verifier_log: aya_obj::VerifierLog::new(String::new()),
        }
    }

    /// Calls `load_retrying` with a load that fails with `errno` `fails`
    /// times, then succeeds; returns (result is ok, calls made).
    fn run(errno: i32, fails: u32) -> (bool, u32) {
        let calls = Cell::new(0);
        let r = load_retrying(|| {
            calls.set(calls.get() + 1);
            if calls.get() <= fails {
                Err(load_error(errno))
            } else {
                Ok(())
            }
        });
        (r.is_ok(), calls.get())
    }

    #[test]
    fn eagain_is_retried_up_to_five_attempts() {
        assert_eq!(run(libc::EAGAIN, 0), (true, 1));
        assert_eq!(run(libc::EAGAIN, 4), (true, 5));
        assert_eq!(run(libc::EAGAIN, 5), (false, 5));
    }

    #[test]
    fn other_errors_are_not_retried() {
        assert_eq!(run(libc::EACCES, 3), (false, 1));
        assert_eq!(run(libc::EINVAL, 1), (false, 1));
    }
}
