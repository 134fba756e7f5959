//! The connection table at scale: xvs loaded with its default table size
//! (10 million entries), one real connection made by running a SYN and an
//! ACK through `xvs_xdp` (`BPF_PROG_TEST_RUN`), then the table filled to
//! 10k, 1M and 10M entries by cloning that entry under other client
//! addresses and ports (`BPF_MAP_UPDATE_BATCH` on the map's fd, found by
//! name among this process's fds). At each size: the memory the kernel
//! charges to the table (`memlock` in fdinfo, for the table and its NAT
//! reply index) and the cost of an established-flow packet through
//! `xvs_xdp`: the same flow repeated (hot in the caches), and random flows
//! of the table, one run each (a lookup that misses the caches as a busy
//! director's would).

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
    time::Instant,
};

use xvs_core::persist::Sysctls;
use xvs_datapath::{Datapath, LoadOptions, NextHop, Prog, L2};
use xvs_testhost::{Error, Result};

use crate::{
    bpfsys,
    pktgen::{frame, L4},
    xvs,
};

fn err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("conn table: {what}: {e}"))
}

/// One table size.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnPoint {
    pub entries: u64,
    /// Seconds to insert the entries added at this step.
    pub fill_s: f64,
    /// memlock of the connection table, bytes.
    pub conns_bytes: u64,
    /// memlock of the NAT reply index (same size, empty in DR).
    pub index_bytes: u64,
    /// ns per run, same flow repeated: medians over `runs`, with min/max.
    pub hot_ns: Vec<f64>,
    /// ns per run, random flows of the table.
    pub random_ns: Vec<f64>,
}

/// Results of the whole part.
#[derive(Clone, Debug, Default)]
pub struct ConnResult {
    pub max_conns: u32,
    pub points: Vec<ConnPoint>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const MAC_D: [u8; 6] = [0x02, 0x78, 0x76, 0x73, 0x02, 0x00];
const MAC_C: [u8; 6] = [0x02, 0x78, 0x76, 0x73, 0x01, 0x00];

/// The client address and port of synthetic entry `i`: 198.18.128.0/17,
/// ports 10000-59999.
fn client_of(i: u64) -> (Ipv4Addr, u16) {
    let a = u32::from(Ipv4Addr::new(198, 18, 128, 0)) + (i / 50_000) as u32;
    (Ipv4Addr::from(a), 10_000 + (i % 50_000) as u16)
}

/// Runs the part: `sizes` ascending, `runs` timing repeats per size.
pub fn run(sizes: &[u64], runs: usize, random_flows: usize) -> ConnResult {
    let mut res = ConnResult::default();
    if let Err(e) = run_inner(sizes, runs, random_flows, &mut res) {
        eprintln!("xvs-bench: conn table FAILED: {e}");
        res.error = Some(e.to_string());
    }
    res
}

fn run_inner(sizes: &[u64], runs: usize, random_flows: usize, res: &mut ConnResult) -> Result<()> {
    let before: BTreeSet<u32> = bpfsys::objects(true).iter().map(|o| o.id).collect();
    let before_p: BTreeSet<u32> = bpfsys::objects(false).iter().map(|o| o.id).collect();
    let max = *sizes.iter().max().unwrap_or(&0);
    let max_conns = xvs_datapath::DEFAULT_MAX_CONNS.max(max as u32 + 16);
    res.max_conns = max_conns;
    // The table itself: no flow cache in front of it (it would answer the
    // repeated and the small-table cases from its own few MiB).
    let opts = LoadOptions {
        flow_cache: 0,
        ..LoadOptions::with_max_conns(max_conns)
    };
    let mut dp =
        Datapath::load_with(opts).map_err(|e| err("loading the datapath", format!("{e:?}")))?;
    let servers: Vec<IpAddr> = (10..13)
        .map(|h| IpAddr::V4(Ipv4Addr::new(198, 18, 1, h)))
        .collect();
    let table = xvs::table(&xvs::rules(IpAddr::V4(VIP), 80, &servers, xvs::Method::Dr))?;
    let l2 = L2 {
        default: NextHop {
            mac: [0x02, 0x78, 0x76, 0x73, 0x10, 0],
            src_mac: MAC_D,
            ifindex: 0,
        },
        ..L2::default()
    };
    dp.sync(&table, &Sysctls::default(), &l2)
        .map_err(|e| err("sync", e))?;
    let new_map = |name: &str| {
        bpfsys::objects(true)
            .into_iter()
            .find(|o| o.name == name && !before.contains(&o.id))
            .ok_or_else(|| err(name, "map not found among this process's fds"))
    };
    let conns = new_map("xvs_conns")?;
    let index = new_map("xvs_conns_out")?;
    let prog = bpfsys::objects(false)
        .into_iter()
        .find(|o| o.name == "xvs_xdp" && !before_p.contains(&o.id))
        .ok_or_else(|| err("xvs_xdp", "program not found among this process's fds"))?;

    // One real connection: SYN then ACK through the program.
    let sport = 9999;
    for flags in [0x02, 0x10] {
        let f = frame(MAC_D, MAC_C, CLIENT, VIP, L4::Tcp, sport, 80, flags);
        let out = dp.test_run(Prog::Xdp, &f).map_err(|e| err("test run", e))?;
        if out.verdict != xvs_datapath::verdict::XDP_TX {
            return Err(err("probe flow", format!("verdict {}", out.verdict)));
        }
    }
    let (ks, vs) = (conns.key_size as usize, conns.value_size as usize);
    let key = bpfsys::first_key(conns.fd, ks)
        .map_err(|e| err("first key", e))?
        .ok_or_else(|| err("probe flow", "no connection entry"))?;
    let value = bpfsys::lookup(conns.fd, &key, vs).map_err(|e| err("lookup", e))?;
    // The key is struct conn_key: saddr[4] (network order), daddr[4],
    // sport, dport (network order), proto, family, pad.
    if key.len() != 40 || key[0..4] != CLIENT.octets() || key[32..34] != sport.to_be_bytes() {
        return Err(err(
            "probe flow",
            format!("unexpected key layout {key:02x?}"),
        ));
    }

    let mut filled: u64 = 1; // the probe flow
    let batch = 50_000usize;
    for &target in sizes {
        let t0 = Instant::now();
        while filled < target {
            let n = ((target - filled) as usize).min(batch);
            let mut keys = Vec::with_capacity(n * ks);
            let mut vals = Vec::with_capacity(n * vs);
            for j in 0..n as u64 {
                let (a, p) = client_of(filled - 1 + j);
                let mut k = key.clone();
                k[0..4].copy_from_slice(&a.octets());
                k[32..34].copy_from_slice(&p.to_be_bytes());
                keys.extend_from_slice(&k);
                vals.extend_from_slice(&value);
            }
            bpfsys::update_batch(conns.fd, &keys, &vals, n as u32)
                .map_err(|e| err(&format!("inserting at {filled} entries"), e))?;
            filled += n as u64;
        }
        let fill_s = t0.elapsed().as_secs_f64();
        let count = filled;
        let probe = frame(MAC_D, MAC_C, CLIENT, VIP, L4::Tcp, sport, 80, 0x10);
        let mut hot = Vec::new();
        let mut random = Vec::new();
        // xorshift: random synthetic flows among those inserted.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ count;
        let frames: Vec<Vec<u8>> = (0..random_flows)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let (a, p) = client_of(x % (count - 1).max(1));
                frame(MAC_D, MAC_C, a, VIP, L4::Tcp, p, 80, 0x10)
            })
            .collect();
        for _ in 0..runs {
            let (rv, ns) =
                bpfsys::test_run(prog.fd, &probe, 1_000_000).map_err(|e| err("test run", e))?;
            if rv != xvs_datapath::verdict::XDP_TX {
                return Err(err("hot flow", format!("verdict {rv}")));
            }
            hot.push(f64::from(ns));
            let mut total = 0f64;
            for f in &frames {
                let (rv, ns) = bpfsys::test_run(prog.fd, f, 1).map_err(|e| err("test run", e))?;
                if rv != xvs_datapath::verdict::XDP_TX {
                    return Err(err("random flow", format!("verdict {rv}")));
                }
                total += f64::from(ns);
            }
            random.push(total / frames.len() as f64);
        }
        let p = ConnPoint {
            entries: count,
            fill_s,
            conns_bytes: bpfsys::memlock(conns.fd).unwrap_or(0),
            index_bytes: bpfsys::memlock(index.fd).unwrap_or(0),
            hot_ns: hot,
            random_ns: random,
        };
        eprintln!(
            "xvs-bench: conn table {:>9} entries: {:.0} MiB (+{:.0} MiB index), hot {:?} ns, random {:?} ns, filled in {:.1} s",
            p.entries,
            p.conns_bytes as f64 / 1048576.0,
            p.index_bytes as f64 / 1048576.0,
            p.hot_ns,
            p.random_ns.iter().map(|v| v.round()).collect::<Vec<_>>(),
            p.fill_s
        );
        res.points.push(p);
    }
    drop(dp);
    Ok(())
}
