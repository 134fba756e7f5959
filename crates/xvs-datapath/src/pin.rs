//! Pinning: a datapath that outlives the process that loaded it.
//!
//! With [`LoadOptions::pin_dir`](crate::LoadOptions::pin_dir) set, the state
//! maps ([`PINNED_MAPS`]) live on a bpffs under that directory, one
//! directory per instance (e.g. `/sys/fs/bpf/xvs/<instance>`), and a later
//! load with the same directory reuses them: connections, templates, counts,
//! counters, caches and the rules themselves. Attachments made with
//! [`Datapath::attach_pinned_xdp`] / [`Datapath::attach_pinned_tc`] are
//! bpf_links pinned in the same directory (`link_xdp_<ifindex>`,
//! `link_tc_<ifindex>`), so they stay when the `Datapath` is dropped or the
//! process exits; the next run replaces their program atomically
//! (`BPF_LINK_UPDATE`: no moment without a program). [`Datapath::detach_all`]
//! and [`Datapath::unpin`] (or [`unpin_dir`]) undo it all.

use std::{
    collections::BTreeSet,
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use aya::{
    maps::MapInfo,
    programs::{
        links::{FdLink, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
        xdp::XdpLink,
        LinkOrder, TcAttachType,
    },
};

use crate::{maps::name, Datapath, Error, Iface, Result, XdpMode, TC_PROG, XDP_PROG};

/// Where bpffs is normally mounted.
pub const BPFFS: &str = "/sys/fs/bpf";

/// The maps kept in the pin directory: everything established connections
/// and counters need, and the rules (so a new program forwards exactly as
/// the old one from its first packet, before the new daemon's first sync).
/// Per-CPU scratch maps and the twos test draws are per load.
pub const PINNED_MAPS: &[&str] = &[
    name::SERVICES,
    name::DEST_LISTS,
    name::REALS,
    name::REAL_STATE,
    name::REAL_LIVE,
    name::SCHED_STATE,
    name::HTAB,
    name::CONNS,
    name::CONNS_OUT,
    name::CONFIG,
    name::SVC_STATS,
    name::REAL_STATS,
    name::TOTAL_STATS,
    name::COUNTERS,
    name::TPL_INDEX,
    name::TPLS,
    name::SEQ,
    name::LBLC,
    name::LBLCR,
];

/// The hook of a pinned attachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// XDP (`xvs_xdp`), a bpf_link.
    Xdp,
    /// tc ingress (`xvs_tc`), a tcx link (kernel >= 6.6).
    Tc,
}

impl Hook {
    fn prefix(self) -> &'static str {
        match self {
            Hook::Xdp => "link_xdp_",
            Hook::Tc => "link_tc_",
        }
    }

    /// The pin file of this hook on interface `ifindex` in `dir` (bpffs
    /// names may not contain dots).
    pub fn link_path(self, dir: &Path, ifindex: u32) -> PathBuf {
        dir.join(format!("{}{ifindex}", self.prefix()))
    }
}

/// A pinned attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedAttachment {
    /// XDP or tc.
    pub hook: Hook,
    /// The interface (in the network namespace it was attached in).
    pub ifindex: u32,
    /// The program the link runs now (kernel program id).
    pub prog_id: u32,
    /// `true` if an attachment left by a previous run was taken over (its
    /// program replaced atomically), `false` if it was created.
    pub replaced: bool,
}

fn fs_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Fs {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn link_err(path: &Path) -> impl FnOnce(aya::programs::links::LinkError) -> Error + '_ {
    move |source| Error::Link {
        path: path.to_path_buf(),
        source,
    }
}

/// `BPF_FS_MAGIC`.
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

fn is_bpffs(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated, st is a valid out pointer.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    r == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Makes sure a bpffs is mounted at `/sys/fs/bpf` ([`BPFFS`]), mounting one
/// if not. Returns whether it mounted. Needs CAP_SYS_ADMIN. Run it in the
/// mount namespace the pins should live in (not under `ip netns exec`,
/// which gives the command a private `/sys`).
pub fn ensure_bpffs() -> Result<bool> {
    ensure_bpffs_at(Path::new(BPFFS))
}

/// [`ensure_bpffs`] at another mount point.
pub fn ensure_bpffs_at(dir: &Path) -> Result<bool> {
    if is_bpffs(dir) {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).map_err(fs_err("creating", dir))?;
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| fs_err("mounting bpffs on", dir)(io::Error::other(e)))?;
    let (src, fstype, opts) = (c"bpf", c"bpf", c"mode=0700");
    // SAFETY: all pointers are valid NUL-terminated strings.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            c.as_ptr(),
            fstype.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(fs_err("mounting bpffs on", dir)(io::Error::last_os_error()));
    }
    Ok(true)
}

/// Creates `dir` (it must be on a bpffs, which is mounted at
/// `/sys/fs/bpf` if `dir` is under it and none is) and checks that the maps already
/// pinned there fit this build and `max_conns`. Returns the names of the
/// maps found pinned.
pub(crate) fn prepare(dir: &Path, max_conns: u32) -> Result<BTreeSet<&'static str>> {
    if dir.starts_with(BPFFS) {
        ensure_bpffs()?;
    }
    std::fs::create_dir_all(dir).map_err(fs_err("creating", dir))?;
    if !is_bpffs(dir) {
        return Err(Error::Fs {
            what: "pinning in",
            path: dir.to_path_buf(),
            source: io::Error::other("not on a bpffs (see ensure_bpffs)"),
        });
    }
    let obj = aya_obj::Object::parse(crate::BPF_OBJECT)
        .map_err(|e| Error::PinMismatch(format!("parsing the BPF object: {e}")))?;
    let mut found = BTreeSet::new();
    for &m in PINNED_MAPS {
        let path = dir.join(m);
        if !path.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&path).map_err(|source| Error::Map { map: m, source })?;
        let def = obj.maps.get(m).ok_or(Error::Missing(m))?;
        let conns = m == name::CONNS || m == name::CONNS_OUT;
        let want_max = if conns { max_conns } else { def.max_entries() };
        let pinned_type = info.map_type().map_or(u32::MAX, |t| t as u32);
        let checks = [
            ("map type", pinned_type, def.map_type()),
            ("key size", info.key_size(), def.key_size()),
            ("value size", info.value_size(), def.value_size()),
            ("map flags", info.map_flags(), def.map_flags()),
            ("max_entries", info.max_entries(), want_max),
        ];
        for (what, pinned, wanted) in checks {
            if pinned != wanted {
                let hint = if conns && what == "max_entries" {
                    format!(
                        ": LoadOptions::max_conns is {wanted}; load with max_conns {pinned} to \
                         keep the connections, or unpin {} (dropping them)",
                        dir.display()
                    )
                } else {
                    format!(
                        ": it was pinned by an incompatible build; unpin {} (dropping its \
                         connections) to start afresh",
                        dir.display()
                    )
                };
                return Err(Error::PinMismatch(format!(
                    "pinned map {} has {what} {pinned}, this datapath needs {wanted}{hint}",
                    path.display()
                )));
            }
        }
        found.insert(m);
    }
    Ok(found)
}

/// `bpf(2)`, for the two commands aya 0.14 does not offer on a path or a
/// pinned link: `BPF_OBJ_GET` and `BPF_LINK_DETACH`.
fn sys_bpf(cmd: libc::c_long, attr: &mut [u8; 64]) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, writable, zero-padded union bpf_attr prefix
    // of the size passed.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_DETACH: libc::c_long = 34;

fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut attr = [0u8; 64];
    attr[..8].copy_from_slice(&(c.as_ptr() as u64).to_ne_bytes()); // pathname
    let fd = sys_bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: BPF_OBJ_GET returned a new file descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Detaches the link pinned at `path` now (`BPF_LINK_DETACH`, synchronous,
/// whoever else holds it) and removes the pin.
fn detach_link(path: &Path) -> Result<()> {
    let fd = match obj_get(path) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fs_err("opening the link", path)(e)),
    };
    let mut attr = [0u8; 64];
    attr[..4].copy_from_slice(&(fd.as_raw_fd() as u32).to_ne_bytes()); // link_fd
    match sys_bpf(BPF_LINK_DETACH, &mut attr) {
        // ENOLINK: already detached (its interface went away).
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOLINK) => {}
        Err(e) => return Err(fs_err("detaching the link", path)(e)),
    }
    std::fs::remove_file(path).map_err(fs_err("removing", path))?;
    Ok(())
}

/// `BPF_LINK_UPDATE` said the link has no interface any more (`ENOLINK`).
fn defunct(e: &aya::programs::ProgramError) -> bool {
    matches!(e, aya::programs::ProgramError::SyscallError(s)
        if s.io_error.raw_os_error() == Some(libc::ENOLINK))
}

/// Removes the pin of a defunct link.
fn forget_defunct(path: &Path) -> Result<Option<PinnedAttachment>> {
    std::fs::remove_file(path).map_err(fs_err("removing", path))?;
    Ok(None)
}

/// The attachments pinned in `dir`: (hook, ifindex, pin path).
fn links_in(dir: &Path) -> Result<Vec<(Hook, u32, PathBuf)>> {
    let mut v = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(fs_err("reading", dir)(e)),
    };
    for e in rd {
        let e = e.map_err(fs_err("reading", dir))?;
        let n = e.file_name();
        let n = n.to_string_lossy();
        for hook in [Hook::Xdp, Hook::Tc] {
            if let Some(i) = n.strip_prefix(hook.prefix()).and_then(|i| i.parse().ok()) {
                v.push((hook, i, e.path()));
            }
        }
    }
    v.sort();
    Ok(v)
}

/// Removes everything a pinned datapath left in `dir`: detaches its pinned
/// attachments (synchronously), unpins its maps (they are freed once no
/// program or process holds them) and removes `dir`. For a clean stop
/// without loading the datapath; a missing `dir` is not an error. Goes on
/// past a failure and returns the first one.
pub fn unpin_dir(dir: &Path) -> Result<()> {
    let mut first = Ok(());
    let mut keep = |r: Result<()>| {
        if first.is_ok() {
            first = r;
        }
    };
    let remove = |path: &Path| match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(fs_err("removing", path)(e)),
        _ => Ok(()),
    };
    match links_in(dir) {
        Ok(links) => {
            for (_, _, path) in links {
                let r = detach_link(&path);
                if r.is_err() {
                    // Unpinned, it goes when its last holder does.
                    let _ = remove(&path);
                }
                keep(r);
            }
        }
        Err(e) => keep(Err(e)),
    }
    for m in PINNED_MAPS {
        keep(remove(&dir.join(m)));
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => keep(Err(fs_err("removing", dir)(e))),
        _ => {}
    }
    first
}

impl Datapath {
    /// The pin directory, if the datapath was loaded with one.
    pub fn pin_dir(&self) -> Option<&Path> {
        self.pin.as_ref().map(|p| p.dir.as_path())
    }

    /// Whether the load found state pinned by a previous run and took it
    /// over (connections, counters, rules): the first [`Datapath::sync`]
    /// then matches the table to it, whatever its `DestId`s.
    pub fn adopted(&self) -> bool {
        self.pin.as_ref().is_some_and(|p| p.adopted)
    }

    fn need_pin_dir(&self) -> Result<PathBuf> {
        self.pin_dir()
            .map(Path::to_path_buf)
            .ok_or(Error::Unsupported(
                "pinned attachments need LoadOptions::pin_dir",
            ))
    }

    /// The kernel id of one of this datapath's programs.
    pub fn program_id(&self, prog: crate::Prog) -> Result<u32> {
        let (info, name) = match prog {
            crate::Prog::Xdp => (self.xdp()?.info(), XDP_PROG),
            crate::Prog::Tc => (self.tc()?.info(), TC_PROG),
        };
        info.map(|i| i.id())
            .map_err(|source| Error::Program { prog: name, source })
    }

    /// Attaches the XDP program to `iface` with a bpf_link pinned in the pin
    /// directory, which outlives this `Datapath` and the process. If a
    /// previous run left one on this interface, its program is replaced
    /// atomically instead (the link keeps the XDP mode it was made with).
    pub fn attach_pinned_xdp<'a>(
        &mut self,
        iface: impl Into<Iface<'a>>,
        mode: XdpMode,
    ) -> Result<PinnedAttachment> {
        let dir = self.need_pin_dir()?;
        let ifindex = iface.into().index()?;
        let path = Hook::Xdp.link_path(&dir, ifindex);
        if path.exists() {
            if let Some(a) = self.replace_link(Hook::Xdp, ifindex, &path)? {
                return Ok(a);
            }
        }
        let perr = |source| Error::Program {
            prog: XDP_PROG,
            source,
        };
        let prog = self.xdp_mut()?;
        let id = prog.attach_to_if_index(ifindex, mode).map_err(perr)?;
        let link = prog.take_link(id).map_err(perr)?;
        let link = FdLink::try_from(link).map_err(link_err(&path))?;
        self.pin_link(Hook::Xdp, ifindex, link, &path)
    }

    /// Attaches the tc program to the ingress of `iface` with a tcx link
    /// pinned in the pin directory (kernel >= 6.6), which outlives this
    /// `Datapath` and the process. If a previous run left one on this
    /// interface, its program is replaced atomically instead.
    pub fn attach_pinned_tc<'a>(
        &mut self,
        iface: impl Into<Iface<'a>>,
    ) -> Result<PinnedAttachment> {
        let dir = self.need_pin_dir()?;
        let iface = iface.into();
        let ifindex = iface.index()?;
        let path = Hook::Tc.link_path(&dir, ifindex);
        if path.exists() {
            if let Some(a) = self.replace_link(Hook::Tc, ifindex, &path)? {
                return Ok(a);
            }
        }
        let name = iface.name()?;
        let perr = |source| Error::Program {
            prog: TC_PROG,
            source,
        };
        let prog = self.tc_mut()?;
        let id = prog
            .attach_with_options(
                &name,
                TcAttachType::Ingress,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            )
            .map_err(perr)?;
        let link = prog.take_link(id).map_err(perr)?;
        let link = FdLink::try_from(link).map_err(link_err(&path))?;
        self.pin_link(Hook::Tc, ifindex, link, &path)
    }

    fn pin_link(
        &self,
        hook: Hook,
        ifindex: u32,
        link: FdLink,
        path: &Path,
    ) -> Result<PinnedAttachment> {
        let prog_id = link.info().map_err(link_err(path))?.program_id();
        // Dropping the returned PinnedLink closes our fd; the pin holds it.
        link.pin(path).map_err(|source| Error::Pin {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(PinnedAttachment {
            hook,
            ifindex,
            prog_id,
            replaced: false,
        })
    }

    /// Points the link pinned at `path` at this datapath's program. `None`
    /// if the link was defunct (its interface was deleted): its pin is
    /// removed.
    fn replace_link(
        &mut self,
        hook: Hook,
        ifindex: u32,
        path: &Path,
    ) -> Result<Option<PinnedAttachment>> {
        let old: FdLink = PinnedLink::from_pin(path).map_err(link_err(path))?.into();
        let fd = match hook {
            Hook::Xdp => {
                let perr = |source| Error::Program {
                    prog: XDP_PROG,
                    source,
                };
                let link = XdpLink::try_from(old).map_err(link_err(path))?;
                let prog = self.xdp_mut()?;
                let id = match prog.attach_to_link(link) {
                    Err(e) if defunct(&e) => return forget_defunct(path),
                    r => r.map_err(perr)?,
                };
                let link = prog.take_link(id).map_err(perr)?;
                FdLink::try_from(link).map_err(link_err(path))?
            }
            Hook::Tc => {
                let perr = |source| Error::Program {
                    prog: TC_PROG,
                    source,
                };
                let link = SchedClassifierLink::try_from(old).map_err(link_err(path))?;
                let prog = self.tc_mut()?;
                let id = match prog.attach_to_link(link) {
                    Err(e) if defunct(&e) => return forget_defunct(path),
                    r => r.map_err(perr)?,
                };
                let link = prog.take_link(id).map_err(perr)?;
                FdLink::try_from(link).map_err(link_err(path))?
            }
        };
        let prog_id = fd.info().map_err(link_err(path))?.program_id();
        Ok(Some(PinnedAttachment {
            hook,
            ifindex,
            prog_id,
            replaced: true,
        }))
    }

    /// The attachments pinned in the pin directory (by this run or a
    /// previous one), with the program each runs now.
    pub fn pinned_attachments(&self) -> Result<Vec<PinnedAttachment>> {
        let Some(dir) = self.pin_dir() else {
            return Ok(Vec::new());
        };
        let mut v = Vec::new();
        for (hook, ifindex, path) in links_in(dir)? {
            let l: FdLink = PinnedLink::from_pin(&path).map_err(link_err(&path))?.into();
            let prog_id = l.info().map_err(link_err(&path))?.program_id();
            v.push(PinnedAttachment {
                hook,
                ifindex,
                prog_id,
                replaced: false,
            });
        }
        Ok(v)
    }

    /// Takes over every attachment pinned by a previous run: replaces each
    /// one's program with this datapath's, atomically (`BPF_LINK_UPDATE`).
    /// Works from any network namespace (the links know their interface).
    /// Links whose interface was deleted meanwhile are unpinned and left
    /// out of the answer.
    pub fn replace_pinned(&mut self) -> Result<Vec<PinnedAttachment>> {
        let Some(dir) = self.pin_dir().map(Path::to_path_buf) else {
            return Ok(Vec::new());
        };
        let mut v = Vec::new();
        for (hook, ifindex, path) in links_in(&dir)? {
            v.extend(self.replace_link(hook, ifindex, &path)?);
        }
        Ok(v)
    }

    /// Detaches the pinned attachment of `hook` on `iface`, if there is one.
    pub fn detach_pinned<'a>(&mut self, iface: impl Into<Iface<'a>>, hook: Hook) -> Result<bool> {
        let dir = self.need_pin_dir()?;
        let path = hook.link_path(&dir, iface.into().index()?);
        if !path.exists() {
            return Ok(false);
        }
        detach_link(&path)?;
        Ok(true)
    }

    /// Detaches every pinned attachment (synchronously: the interfaces have
    /// no xvs program when it returns) and removes their pins. The maps stay
    /// pinned. Returns how many there were.
    pub fn detach_all(&mut self) -> Result<usize> {
        let Some(dir) = self.pin_dir().map(Path::to_path_buf) else {
            return Ok(0);
        };
        let links = links_in(&dir)?;
        for (_, _, path) in &links {
            detach_link(path)?;
        }
        Ok(links.len())
    }

    /// Clean stop: detaches every pinned attachment, unpins the maps and
    /// removes the pin directory, then drops the datapath (which frees the
    /// maps and detaches the unpinned attachments).
    pub fn unpin(mut self) -> Result<()> {
        self.detach_all()?;
        if let Some(dir) = self.pin_dir().map(Path::to_path_buf) {
            unpin_dir(&dir)?;
        }
        Ok(())
    }
}

/// The ids of the programs on the tcx ingress of `iface` (in the calling
/// thread's network namespace), first to last: a status check for a
/// daemon, and what the tests look at after a detach.
pub fn tc_ingress_programs(iface: &str) -> Result<Vec<u32>> {
    let (_, progs) = aya::programs::SchedClassifier::query_tcx(iface, TcAttachType::Ingress)
        .map_err(|source| Error::Program {
            prog: TC_PROG,
            source,
        })?;
    Ok(progs.iter().map(|p| p.id()).collect())
}
