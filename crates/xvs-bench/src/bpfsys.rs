//! The few `bpf(2)` commands the connection-table benchmark needs and aya
//! does not offer on a bare fd: finding this process's BPF objects by name
//! (a bpftool-less `/proc/self/fd` scan), map lookups, batch updates,
//! `BPF_PROG_TEST_RUN` with a repeat count, and a map's memlock from
//! `/proc/self/fdinfo`.

use std::{fs, io, os::fd::RawFd};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_ENABLE_STATS: libc::c_long = 32;

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> io::Result<i64> {
    // SAFETY: attr is a zero-padded union bpf_attr of 128 bytes, larger
    // than any command's part of it; pointers inside it point to buffers
    // the callers keep alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr() as *mut libc::c_void,
            std::mem::size_of_val(attr) as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A BPF map or program this process holds an fd of.
#[derive(Clone, Debug)]
pub struct Obj {
    pub fd: RawFd,
    pub id: u32,
    pub name: String,
    /// Maps: key size, value size, max entries.
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

fn info(fd: RawFd, buf: &mut [u8]) -> io::Result<()> {
    let mut a = [0u64; 16];
    a[0] = (fd as u32 as u64) | ((buf.len() as u64) << 32);
    a[1] = buf.as_mut_ptr() as u64;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a).map(|_| ())
}

fn cstr(b: &[u8]) -> String {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..n]).into_owned()
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

/// Every BPF map (`maps`) or program (`!maps`) this process has an fd of.
pub fn objects(maps: bool) -> Vec<Obj> {
    let want = if maps {
        "anon_inode:bpf-map"
    } else {
        "anon_inode:bpf-prog"
    };
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return vec![];
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Ok(fd) = e.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        match fs::read_link(e.path()) {
            Ok(l) if l.to_string_lossy() == want => {}
            _ => continue,
        }
        let mut b = [0u8; 256];
        if info(fd, &mut b).is_err() {
            continue;
        }
        out.push(if maps {
            // struct bpf_map_info: type, id, key_size, value_size,
            // max_entries, map_flags, name[16]
            Obj {
                fd,
                id: u32_at(&b, 4),
                key_size: u32_at(&b, 8),
                value_size: u32_at(&b, 12),
                max_entries: u32_at(&b, 16),
                name: cstr(&b[24..40]),
            }
        } else {
            // struct bpf_prog_info: ... name[16] at 64
            Obj {
                fd,
                id: u32_at(&b, 4),
                key_size: 0,
                value_size: 0,
                max_entries: 0,
                name: cstr(&b[64..80]),
            }
        });
    }
    out
}

/// The first key of a map, if any.
pub fn first_key(fd: RawFd, key_size: usize) -> io::Result<Option<Vec<u8>>> {
    let mut next = vec![0u8; key_size];
    let mut a = [0u64; 16];
    a[0] = fd as u32 as u64;
    a[1] = 0; // key = NULL: the first one
    a[2] = next.as_mut_ptr() as u64;
    match bpf(BPF_MAP_GET_NEXT_KEY, &mut a) {
        Ok(_) => Ok(Some(next)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The value of `key`.
pub fn lookup(fd: RawFd, key: &[u8], value_size: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; value_size];
    let mut a = [0u64; 16];
    a[0] = fd as u32 as u64;
    a[1] = key.as_ptr() as u64;
    a[2] = v.as_mut_ptr() as u64;
    bpf(BPF_MAP_LOOKUP_ELEM, &mut a)?;
    Ok(v)
}

/// Inserts `count` entries (keys and values packed back to back).
pub fn update_batch(fd: RawFd, keys: &[u8], values: &[u8], count: u32) -> io::Result<()> {
    let mut a = [0u64; 16];
    // in_batch, out_batch, keys, values, count|map_fd, elem_flags, flags
    a[2] = keys.as_ptr() as u64;
    a[3] = values.as_ptr() as u64;
    a[4] = u64::from(count) | ((fd as u32 as u64) << 32);
    bpf(BPF_MAP_UPDATE_BATCH, &mut a).map(|_| ())
}

/// Runs program `fd` on `data` `repeat` times (`BPF_PROG_TEST_RUN`);
/// returns (return value, the kernel's mean time per run in ns).
pub fn test_run(fd: RawFd, data: &[u8], repeat: u32) -> io::Result<(u32, u32)> {
    let mut out = vec![0u8; data.len() + 256];
    let mut a = [0u64; 16];
    // prog_fd, retval, data_size_in, data_size_out, data_in, data_out,
    // repeat, duration
    a[0] = fd as u32 as u64;
    a[1] = (data.len() as u64) | ((out.len() as u64) << 32);
    a[2] = data.as_ptr() as u64;
    a[3] = out.as_mut_ptr() as u64;
    a[4] = u64::from(repeat);
    bpf(BPF_PROG_TEST_RUN, &mut a)?;
    Ok(((a[0] >> 32) as u32, (a[4] >> 32) as u32))
}

/// `memlock:` of an fd's `/proc/self/fdinfo` (bytes the kernel charges to
/// the map).
pub fn memlock(fd: RawFd) -> Option<u64> {
    fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Turns on the kernel's run-time accounting of BPF programs
/// (`BPF_ENABLE_STATS`, `BPF_STATS_RUN_TIME`) for as long as the returned fd
/// is open.
pub fn enable_run_time_stats() -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let mut a = [0u64; 16];
    let fd = bpf(BPF_ENABLE_STATS, &mut a)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) })
}

/// (`run_time_ns`, `run_cnt`) of a program fd, from fdinfo.
pub fn run_stats(fd: RawFd) -> Option<(u64, u64)> {
    let s = fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    let get = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((get("run_time_ns:")?, get("run_cnt:")?))
}

/// The newest program named `name` this process holds an fd of.
pub fn newest_prog(name: &str) -> Option<Obj> {
    objects(false)
        .into_iter()
        .filter(|o| o.name == name)
        .max_by_key(|o| o.id)
}
