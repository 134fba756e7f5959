//! The LVS-TUN real-server side: a BPF program that strips IPIP and GUE
//! encapsulation from packets addressed to this host and hands the inner
//! packet to the stack (`bpf/decap.c`). It replaces the `ipip`/`fou` kernel
//! modules, which some kernels do not have.
//!
//! [`Decap::load`] loads both variants (XDP and tc ingress); configure the
//! accepted outer destination addresses ([`Decap::add_address`]) and the GUE
//! port ([`Decap::set_gue_port`]), then attach with [`Decap::attach_tc`] or
//! [`Decap::attach_xdp`]. Dropping the [`Decap`] detaches everything, unless
//! an attachment was made persistent with [`Decap::pin`] (what the
//! `xvs-decap` command does); [`unpin`] removes it again.
//!
//! This module is self-contained (its own error type and interface lookup) so
//! that it does not depend on the director's API.

use std::{
    ffi::CString,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, HashMap, IterableMap, Map, MapData, MapError, PerCpuArray},
    pin::PinError,
    programs::{
        links::{FdLink, LinkError},
        tc::{self, SchedClassifierLinkId, TcError},
        xdp::XdpLinkId,
        ProgramError, SchedClassifier, TcAttachType, Xdp,
    },
    Ebpf, EbpfError, TestRun, TestRunOptions,
};

pub use aya::programs::XdpMode;

/// The compiled decapsulation object (`bpf/decap.c`), 8-byte aligned.
pub static DECAP_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/decap.bpf.o"));

/// Name of the XDP program in [`DECAP_OBJECT`].
pub const XDP_PROG: &str = "xvs_decap_xdp";
/// Name of the tc (`SchedClassifier`) program in [`DECAP_OBJECT`].
pub const TC_PROG: &str = "xvs_decap_tc";
/// Map of accepted outer destination addresses.
pub const ADDRS_MAP: &str = "xvs_decap_addrs";
/// Map with the configuration (the GUE port).
pub const CONFIG_MAP: &str = "xvs_decap_config";
/// Per-CPU counters map.
pub const COUNTERS_MAP: &str = "xvs_decap_counters";

/// Errors of the decap API.
#[derive(Debug, thiserror::Error)]
pub enum DecapError {
    /// Parsing or loading the object failed.
    #[error("loading the decap BPF object: {0}")]
    Ebpf(#[from] EbpfError),
    /// A program failed to load (verifier), attach, detach or run.
    #[error("BPF program {prog}: {source}")]
    Program {
        /// Program name.
        prog: &'static str,
        /// What aya reported.
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
    /// The object lacks a program or map.
    #[error("decap BPF object has no {0}")]
    Missing(&'static str),
    /// An interface does not exist (in this thread's network namespace).
    #[error("interface {0}: {1}")]
    Interface(String, io::Error),
    /// The attachment cannot be pinned (not a bpf_link: netlink fallback on
    /// an old kernel).
    #[error("pinning the attachment: {0}")]
    Link(#[from] LinkError),
    /// Pinning on bpffs failed.
    #[error("pinning at {path}: {source}")]
    Pin {
        /// Pin path.
        path: PathBuf,
        /// What aya reported.
        source: PinError,
    },
    /// A file system operation (bpffs mount, pin directory) failed.
    #[error("{what} {path}: {source}")]
    Fs {
        /// What was being done.
        what: &'static str,
        /// Path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Result with [`DecapError`].
pub type Result<T, E = DecapError> = std::result::Result<T, E>;

/// Accepted outer destination, as the BPF side keys it (`struct decap_addr`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DecapAddr {
    /// Address bytes in network order; IPv4 in the first 4, rest zero.
    pub addr: [u8; 16],
    /// 2 (AF_INET) or 10 (AF_INET6).
    pub family: u32,
}

// SAFETY: plain old data, no padding (16 + 4 bytes).
unsafe impl aya::Pod for DecapAddr {}
const _: () = assert!(std::mem::size_of::<DecapAddr>() == 20);

impl From<IpAddr> for DecapAddr {
    fn from(ip: IpAddr) -> Self {
        let mut addr = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => {
                addr[..4].copy_from_slice(&v4.octets());
                Self { addr, family: 2 }
            }
            IpAddr::V6(v6) => Self {
                addr: v6.octets(),
                family: 10,
            },
        }
    }
}

impl DecapAddr {
    /// The address, or None for an unknown family.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.family {
            2 => Some(IpAddr::V4(Ipv4Addr::new(
                self.addr[0],
                self.addr[1],
                self.addr[2],
                self.addr[3],
            ))),
            10 => Some(IpAddr::V6(Ipv6Addr::from(self.addr))),
            _ => None,
        }
    }
}

/// `struct decap_cfg`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct DecapCfg {
    gue_port_be: u16,
    reserved: u16,
}

// SAFETY: plain old data, no padding.
unsafe impl aya::Pod for DecapCfg {}
const _: () = assert!(std::mem::size_of::<DecapCfg>() == 4);

/// Sum over all CPUs of the decap counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecapCounters {
    /// Not a tunnel packet for this host: handed on untouched.
    pub passed: u64,
    /// IPIP (IPv4/IPv6 in IPv4/IPv6) packets decapsulated.
    pub ipip: u64,
    /// GUE packets decapsulated.
    pub gue: u64,
    /// Tunnel packets for this host with bad headers: handed on untouched.
    pub malformed: u64,
    /// The kernel refused to shrink the packet: handed on untouched.
    pub error: u64,
}

impl DecapCounters {
    fn from_map(map: &PerCpuArray<MapData, u64>) -> Result<Self> {
        let sum = |idx: u32| -> Result<u64> {
            let v = map.get(&idx, 0).map_err(|source| DecapError::Map {
                map: COUNTERS_MAP,
                source,
            })?;
            Ok(v.iter().copied().fold(0u64, u64::wrapping_add))
        };
        Ok(Self {
            passed: sum(0)?,
            ipip: sum(1)?,
            gue: sum(2)?,
            malformed: sum(3)?,
            error: sum(4)?,
        })
    }
}

/// Which decap program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecapProg {
    /// [`XDP_PROG`].
    Xdp,
    /// [`TC_PROG`].
    Tc,
}

/// A live attachment of the decap program.
#[derive(Debug)]
pub enum DecapAttachment {
    /// XDP.
    Xdp(XdpLinkId),
    /// tc ingress (a tcx link on kernels >= 6.6).
    Tc(SchedClassifierLinkId),
}

/// The loaded decapsulation programs and their maps.
pub struct Decap {
    ebpf: Ebpf,
    addrs: HashMap<MapData, DecapAddr, u32>,
    config: Array<MapData, DecapCfg>,
    counters: PerCpuArray<MapData, u64>,
}

impl std::fmt::Debug for Decap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decap").finish_non_exhaustive()
    }
}

/// Index of interface `name` in the calling thread's network namespace.
fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name).map_err(|e| {
        DecapError::Interface(
            name.to_string(),
            io::Error::new(io::ErrorKind::InvalidInput, e),
        )
    })?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(DecapError::Interface(
            name.to_string(),
            io::Error::last_os_error(),
        ));
    }
    Ok(i)
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> DecapError {
    move |source| DecapError::Map { map, source }
}

impl Decap {
    /// Loads the embedded object: creates the maps (no accepted address, GUE
    /// off) and loads both programs. Needs root (CAP_BPF + CAP_NET_ADMIN).
    pub fn load() -> Result<Self> {
        let mut ebpf = Ebpf::load(DECAP_OBJECT)?;
        let addrs = ebpf
            .take_map(ADDRS_MAP)
            .ok_or(DecapError::Missing("map xvs_decap_addrs"))?;
        let addrs = HashMap::try_from(addrs).map_err(map_err(ADDRS_MAP))?;
        let config = ebpf
            .take_map(CONFIG_MAP)
            .ok_or(DecapError::Missing("map xvs_decap_config"))?;
        let config = Array::try_from(config).map_err(map_err(CONFIG_MAP))?;
        let counters = ebpf
            .take_map(COUNTERS_MAP)
            .ok_or(DecapError::Missing("map xvs_decap_counters"))?;
        let counters = PerCpuArray::try_from(counters).map_err(map_err(COUNTERS_MAP))?;
        let mut d = Self {
            ebpf,
            addrs,
            config,
            counters,
        };
        let x = d.xdp_mut()?;
        crate::load_retrying(|| x.load()).map_err(|source| DecapError::Program {
            prog: XDP_PROG,
            source,
        })?;
        let t = d.tc_mut()?;
        crate::load_retrying(|| t.load()).map_err(|source| DecapError::Program {
            prog: TC_PROG,
            source,
        })?;
        Ok(d)
    }

    fn xdp(&self) -> Result<&Xdp> {
        let p = self
            .ebpf
            .program(XDP_PROG)
            .ok_or(DecapError::Missing("program xvs_decap_xdp"))?;
        p.try_into().map_err(|source| DecapError::Program {
            prog: XDP_PROG,
            source,
        })
    }

    fn xdp_mut(&mut self) -> Result<&mut Xdp> {
        let p = self
            .ebpf
            .program_mut(XDP_PROG)
            .ok_or(DecapError::Missing("program xvs_decap_xdp"))?;
        p.try_into().map_err(|source| DecapError::Program {
            prog: XDP_PROG,
            source,
        })
    }

    fn tc(&self) -> Result<&SchedClassifier> {
        let p = self
            .ebpf
            .program(TC_PROG)
            .ok_or(DecapError::Missing("program xvs_decap_tc"))?;
        p.try_into().map_err(|source| DecapError::Program {
            prog: TC_PROG,
            source,
        })
    }

    fn tc_mut(&mut self) -> Result<&mut SchedClassifier> {
        let p = self
            .ebpf
            .program_mut(TC_PROG)
            .ok_or(DecapError::Missing("program xvs_decap_tc"))?;
        p.try_into().map_err(|source| DecapError::Program {
            prog: TC_PROG,
            source,
        })
    }

    /// Accepts tunnel packets whose outer destination is `ip`.
    pub fn add_address(&mut self, ip: IpAddr) -> Result<()> {
        self.addrs
            .insert(DecapAddr::from(ip), 1, 0)
            .map_err(map_err(ADDRS_MAP))
    }

    /// Stops accepting `ip`; removing an absent address is an error.
    pub fn remove_address(&mut self, ip: IpAddr) -> Result<()> {
        self.addrs
            .remove(&DecapAddr::from(ip))
            .map_err(map_err(ADDRS_MAP))
    }

    /// The accepted outer destination addresses.
    pub fn addresses(&self) -> Result<Vec<IpAddr>> {
        let mut v = Vec::new();
        for k in self.addrs.keys() {
            if let Some(ip) = k.map_err(map_err(ADDRS_MAP))?.ip() {
                v.push(ip);
            }
        }
        v.sort();
        Ok(v)
    }

    /// Sets the UDP port of GUE (`--tun-port`); `None` turns GUE off.
    pub fn set_gue_port(&mut self, port: Option<u16>) -> Result<()> {
        let cfg = DecapCfg {
            gue_port_be: port.unwrap_or(0).to_be(),
            reserved: 0,
        };
        self.config.set(0, cfg, 0).map_err(map_err(CONFIG_MAP))
    }

    /// The configured GUE port.
    pub fn gue_port(&self) -> Result<Option<u16>> {
        let cfg = self.config.get(&0, 0).map_err(map_err(CONFIG_MAP))?;
        Ok(match u16::from_be(cfg.gue_port_be) {
            0 => None,
            p => Some(p),
        })
    }

    /// Attaches the tc program to the ingress of `iface` (in the calling
    /// thread's network namespace), adding a clsact qdisc if missing (aya
    /// uses a tcx link on >= 6.6, which does not need it).
    pub fn attach_tc(&mut self, iface: &str) -> Result<DecapAttachment> {
        ifindex(iface)?;
        if let Err(source) = tc::qdisc_add_clsact(iface) {
            let exists = matches!(&source, TcError::NetlinkError(e) if e.raw_os_error() == Some(libc::EEXIST))
                || matches!(&source, TcError::AlreadyAttached);
            if !exists {
                return Err(DecapError::Qdisc {
                    iface: iface.to_string(),
                    source,
                });
            }
        }
        self.tc_mut()?
            .attach(iface, TcAttachType::Ingress)
            .map(DecapAttachment::Tc)
            .map_err(|source| DecapError::Program {
                prog: TC_PROG,
                source,
            })
    }

    /// Attaches the XDP program to `iface` (in the calling thread's network
    /// namespace).
    pub fn attach_xdp(&mut self, iface: &str, mode: XdpMode) -> Result<DecapAttachment> {
        let index = ifindex(iface)?;
        self.xdp_mut()?
            .attach_to_if_index(index, mode)
            .map(DecapAttachment::Xdp)
            .map_err(|source| DecapError::Program {
                prog: XDP_PROG,
                source,
            })
    }

    /// Detaches one attachment.
    pub fn detach(&mut self, attachment: DecapAttachment) -> Result<()> {
        match attachment {
            DecapAttachment::Xdp(id) => {
                self.xdp_mut()?
                    .detach(id)
                    .map_err(|source| DecapError::Program {
                        prog: XDP_PROG,
                        source,
                    })
            }
            DecapAttachment::Tc(id) => {
                self.tc_mut()?
                    .detach(id)
                    .map_err(|source| DecapError::Program {
                        prog: TC_PROG,
                        source,
                    })
            }
        }
    }

    /// The counters, summed over all CPUs.
    pub fn counters(&self) -> Result<DecapCounters> {
        DecapCounters::from_map(&self.counters)
    }

    /// Makes `attachment` outlive this process: pins its bpf_link as
    /// `dir/link` and the maps as `dir/addrs`, `dir/config`, `dir/counters`
    /// (`dir` is created; its parent must be on a bpffs, see
    /// [`ensure_bpffs`]). The attachment then stays until [`unpin`]`(dir)`.
    /// Needs a bpf_link attachment (XDP on >= 5.9, tc on >= 6.6).
    pub fn pin(&mut self, attachment: DecapAttachment, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| DecapError::Fs {
            what: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        let pin_err = |path: PathBuf| move |source| DecapError::Pin { path, source };
        for (name, file) in [("addrs", 0), ("config", 1), ("counters", 2)] {
            let path = dir.join(name);
            let r = match file {
                0 => self.addrs.map().pin(&path),
                1 => self.config.map().pin(&path),
                _ => self.counters.map().pin(&path),
            };
            r.map_err(pin_err(path))?;
        }
        let link: FdLink = match attachment {
            DecapAttachment::Xdp(id) => self
                .xdp_mut()?
                .take_link(id)
                .map_err(|source| DecapError::Program {
                    prog: XDP_PROG,
                    source,
                })?
                .try_into()?,
            DecapAttachment::Tc(id) => self
                .tc_mut()?
                .take_link(id)
                .map_err(|source| DecapError::Program {
                    prog: TC_PROG,
                    source,
                })?
                .try_into()?,
        };
        let path = dir.join("link");
        link.pin(&path).map_err(pin_err(path))?;
        Ok(())
    }

    /// Runs `packet` (an Ethernet frame) once through `prog` with
    /// `BPF_PROG_TEST_RUN`; returns the verdict and the output frame.
    pub fn test_run(&self, prog: DecapProg, packet: &[u8]) -> Result<(u32, Vec<u8>)> {
        let mut out = vec![0u8; packet.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        };
        let (res, name) = match prog {
            DecapProg::Xdp => (self.xdp()?.test_run(opts), XDP_PROG),
            DecapProg::Tc => (self.tc()?.test_run(opts), TC_PROG),
        };
        let res = res.map_err(|source| DecapError::Program { prog: name, source })?;
        out.truncate(res.data_size_out as usize);
        Ok((res.return_value, out))
    }
}

/// Whether something is pinned in `dir` (an attachment made by [`Decap::pin`]).
pub fn is_pinned(dir: &Path) -> bool {
    dir.join("link").exists()
}

/// The counters of the attachment pinned in `dir`.
pub fn pinned_counters(dir: &Path) -> Result<DecapCounters> {
    let path = dir.join("counters");
    let md = MapData::from_pin(&path).map_err(map_err(COUNTERS_MAP))?;
    let map = PerCpuArray::<MapData, u64>::try_from(Map::PerCpuArray(md))
        .map_err(map_err(COUNTERS_MAP))?;
    DecapCounters::from_map(&map)
}

/// Removes the attachment pinned in `dir` by [`Decap::pin`]: unpinning the
/// link detaches the program (nothing else holds it), unpinning the maps
/// frees them. Then removes `dir`.
pub fn unpin(dir: &Path) -> Result<()> {
    for name in ["link", "addrs", "config", "counters"] {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(DecapError::Fs {
                    what: "removing",
                    path,
                    source,
                })
            }
        }
    }
    std::fs::remove_dir(dir).map_err(|source| DecapError::Fs {
        what: "removing",
        path: dir.to_path_buf(),
        source,
    })
}

/// Makes sure `dir` is a bpffs mount point: mounts one (mode 0700) if it is
/// not. Returns whether it mounted.
pub fn ensure_bpffs(dir: &Path) -> Result<bool> {
    crate::pin::ensure_bpffs_at(dir).map_err(|e| match e {
        crate::Error::Fs { what, path, source } => DecapError::Fs { what, path, source },
        other => DecapError::Fs {
            what: "mounting bpffs on",
            path: dir.to_path_buf(),
            source: io::Error::other(other.to_string()),
        },
    })
}

/// Where `xvs-decap` pins the attachment for `iface` in the calling thread's
/// network namespace: `<bpffs>/xvs-decap/net<netns inode>/<iface>`.
pub fn pin_dir(bpffs: &Path, iface: &str) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let ns = "/proc/thread-self/ns/net";
    let ino = std::fs::metadata(ns)
        .map_err(|source| DecapError::Fs {
            what: "reading",
            path: ns.into(),
            source,
        })?
        .ino();
    Ok(bpffs
        .join("xvs-decap")
        .join(format!("net{ino}"))
        .join(iface))
}

/// Index of interface `name` in the calling thread's network namespace.
pub fn ifindex_of(name: &str) -> Result<u32> {
    ifindex(name)
}
