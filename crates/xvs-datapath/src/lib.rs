//! The eBPF datapath of xvs.
//!
//! The BPF programs are C (`bpf/`), compiled by clang in `build.rs` and
//! embedded in this crate. [`Datapath::load`] loads them with aya; the rest of
//! the API fills the service map, attaches the programs to interfaces (XDP for
//! NICs, tc clsact ingress for veths and containers), reads counters, and runs
//! packets through a program without attaching it ([`Datapath::test_run`],
//! `BPF_PROG_TEST_RUN`), which is what the fixture tests use.
//!
//! Today the programs implement a minimal direct-routing (DR) forwarder; see
//! the crate README.

pub mod decap;
pub mod maps;

use std::{ffi::CStr, io, net::IpAddr};

pub use aya::programs::XdpMode;
use aya::{
    maps::{HashMap, MapData, MapError, PerCpuArray},
    programs::{
        tc::SchedClassifierLinkId,
        tc::{self, TcError},
        xdp::XdpLinkId,
        ProgramError, SchedClassifier, TcAttachType, Xdp,
    },
    Ebpf, EbpfError, TestRun, TestRunOptions,
};

pub use maps::{Proto, SvcDr, SvcKey};

/// The compiled BPF object (`bpf/xvs.c`), 8-byte aligned as aya requires.
pub static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xvs.bpf.o"));

/// Name of the XDP program in the object.
pub const XDP_PROG: &str = "xvs_xdp";
/// Name of the tc (`SchedClassifier`) program in the object.
pub const TC_PROG: &str = "xvs_tc";

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

/// Sum over all CPUs of the datapath's packet counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets not for a service, handed on untouched.
    pub passed: u64,
    /// Packets for a service, rewritten and sent on.
    pub forwarded: u64,
    /// Packets with truncated or invalid headers, handed on untouched.
    pub malformed: u64,
}

/// What one `BPF_PROG_TEST_RUN` of a packet gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The program's return value (see [`verdict`]).
    pub verdict: u32,
    /// The packet as the program left it.
    pub packet: Vec<u8>,
}

/// The loaded datapath: both programs loaded (verified) in the kernel, their
/// maps, and their attachments. Dropping it detaches everything.
pub struct Datapath {
    ebpf: Ebpf,
    services: HashMap<MapData, SvcKey, SvcDr>,
    counters: PerCpuArray<MapData, u64>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath").finish_non_exhaustive()
    }
}

impl Datapath {
    /// Loads the embedded object: creates its maps and loads both programs
    /// (running the verifier). Needs CAP_BPF and CAP_NET_ADMIN (root).
    pub fn load() -> Result<Self> {
        let mut ebpf = Ebpf::load(BPF_OBJECT)?;
        let services = ebpf
            .take_map(maps::SERVICES_MAP)
            .ok_or(Error::Missing("map xvs_services"))?;
        let services = HashMap::try_from(services).map_err(|source| Error::Map {
            map: maps::SERVICES_MAP,
            source,
        })?;
        let counters = ebpf
            .take_map(maps::COUNTERS_MAP)
            .ok_or(Error::Missing("map xvs_counters"))?;
        let counters = PerCpuArray::try_from(counters).map_err(|source| Error::Map {
            map: maps::COUNTERS_MAP,
            source,
        })?;
        let mut dp = Self {
            ebpf,
            services,
            counters,
        };
        dp.xdp_mut()?.load().map_err(|source| Error::Program {
            prog: XDP_PROG,
            source,
        })?;
        dp.tc_mut()?.load().map_err(|source| Error::Program {
            prog: TC_PROG,
            source,
        })?;
        Ok(dp)
    }

    fn xdp(&self) -> Result<&Xdp> {
        let p = self
            .ebpf
            .program(XDP_PROG)
            .ok_or(Error::Missing("program xvs_xdp"))?;
        p.try_into().map_err(|source| Error::Program {
            prog: XDP_PROG,
            source,
        })
    }

    fn xdp_mut(&mut self) -> Result<&mut Xdp> {
        let p = self
            .ebpf
            .program_mut(XDP_PROG)
            .ok_or(Error::Missing("program xvs_xdp"))?;
        p.try_into().map_err(|source| Error::Program {
            prog: XDP_PROG,
            source,
        })
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

    /// Adds or replaces the DR service `proto vip:port`.
    pub fn add_service(&mut self, proto: Proto, vip: IpAddr, port: u16, dr: SvcDr) -> Result<()> {
        if vip.is_ipv6() {
            return Err(Error::Unsupported("IPv6 services"));
        }
        self.services
            .insert(SvcKey::new(proto, vip, port), dr, 0)
            .map_err(|source| Error::Map {
                map: maps::SERVICES_MAP,
                source,
            })
    }

    /// Removes the service `proto vip:port`; removing an absent one is an error
    /// ([`MapError::KeyNotFound`]).
    pub fn remove_service(&mut self, proto: Proto, vip: IpAddr, port: u16) -> Result<()> {
        self.services
            .remove(&SvcKey::new(proto, vip, port))
            .map_err(|source| Error::Map {
                map: maps::SERVICES_MAP,
                source,
            })
    }

    /// The service entry for `proto vip:port`, if any.
    pub fn service(&self, proto: Proto, vip: IpAddr, port: u16) -> Result<Option<SvcDr>> {
        match self.services.get(&SvcKey::new(proto, vip, port), 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(Error::Map {
                map: maps::SERVICES_MAP,
                source,
            }),
        }
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

    /// The packet counters, summed over all CPUs.
    pub fn counters(&self) -> Result<Counters> {
        let sum = |idx: u32| -> Result<u64> {
            let v = self.counters.get(&idx, 0).map_err(Error::Counters)?;
            Ok(v.iter().copied().fold(0u64, u64::wrapping_add))
        };
        Ok(Counters {
            passed: sum(maps::counter::PASSED)?,
            forwarded: sum(maps::counter::FORWARDED)?,
            malformed: sum(maps::counter::MALFORMED)?,
        })
    }

    /// Runs `packet` (a whole Ethernet frame) once through `prog` with
    /// `BPF_PROG_TEST_RUN`, without attaching it anywhere, and returns the
    /// verdict and the packet as the program left it. Maps and counters are
    /// the live ones. Actions are not carried out: `XDP_TX` or a redirect is
    /// only a return value here.
    pub fn test_run(&self, prog: Prog, packet: &[u8]) -> Result<TestRunOutput> {
        // Room for programs that grow the packet (encapsulation) later.
        let mut out = vec![0u8; packet.len() + 256];
        let opts = || TestRunOptions {
            data_in: Some(packet),
            ..TestRunOptions::default()
        };
        let (res, name) = match prog {
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
        let res = res.map_err(|source| Error::Program { prog: name, source })?;
        out.truncate(res.data_size_out as usize);
        Ok(TestRunOutput {
            verdict: res.return_value,
            packet: out,
        })
    }
}
