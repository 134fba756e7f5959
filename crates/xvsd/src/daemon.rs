//! The daemon's state: the rule table (the core's model), the datapath that
//! carries it out, the rate estimators, and the saved rules that let a
//! restarted xvsd adopt the datapath it left behind.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use xvs_api::wire::{self, ApiError};
use xvs_core::ipvsadm::{parse_args, parse_restore, to_argv, Command, NumericOnly, TimeoutSet};
use xvs_core::model::{DestId, ServiceKey};
use xvs_core::persist::Sysctls;
use xvs_core::snapshot::TableSnapshot;
use xvs_core::stats::{Counters, Estimator};
use xvs_core::table::IpvsTable;
use xvs_core::time::Time;
use xvs_datapath::{Datapath, Hook, L2};

use crate::log;

/// A refused request: HTTP status and the error document.
pub type Refusal = (u16, ApiError);

pub fn refusal(status: u16, message: impl Into<String>, detail: impl Into<String>) -> Refusal {
    (
        status,
        ApiError {
            message: message.into(),
            detail: detail.into(),
            errno: 0,
            index: None,
        },
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum EstKey {
    Total,
    Service(ServiceKey),
    Dest(DestId),
}

/// An interface the datapath is attached to.
pub struct Attached {
    pub name: String,
    pub mode: &'static str,
    pub hook: Hook,
    pub ifindex: u32,
}

/// Everything xvsd owns.
pub struct Daemon {
    pub name: String,
    pub table: IpvsTable,
    pub sysctls: Sysctls,
    pub dp: Datapath,
    pub l2: L2,
    pub attached: Vec<Attached>,
    pub pin_dir: PathBuf,
    pub adopted: bool,
    /// Where the rules are saved after every change.
    pub rules_file: PathBuf,
    estimators: HashMap<EstKey, Estimator>,
    next_estimate: Time,
    started: Instant,
}

impl Daemon {
    pub fn new(
        name: String,
        dp: Datapath,
        pin_dir: PathBuf,
        adopted: bool,
        rules_file: PathBuf,
    ) -> Daemon {
        Daemon {
            name,
            table: IpvsTable::new(),
            sysctls: Sysctls::default(),
            dp,
            l2: L2::default(),
            attached: Vec::new(),
            pin_dir,
            adopted,
            rules_file,
            estimators: HashMap::new(),
            next_estimate: Time(Estimator::PERIOD_MS),
            started: Instant::now(),
        }
    }

    /// Milliseconds since start: the clock of the table's timers and the
    /// estimators.
    pub fn now(&self) -> Time {
        Time(self.started.elapsed().as_millis() as u64)
    }

    /// Applies ipvsadm command lines (numeric, without the program name) as
    /// one transaction: the table and the datapath change only if every
    /// command is accepted and the datapath takes the result.
    pub fn apply_argvs(&mut self, argvs: &[Vec<String>]) -> Result<usize, Refusal> {
        let mut cmds = Vec::with_capacity(argvs.len());
        for (i, argv) in argvs.iter().enumerate() {
            let cmd = parse_args(argv, &NumericOnly).map_err(|e| {
                let mut r = refusal(
                    400,
                    e.message.clone(),
                    format!("command {i}: {}", e.message),
                );
                r.1.index = Some(i);
                r
            })?;
            if matches!(
                cmd,
                Command::List(_)
                    | Command::Save { .. }
                    | Command::Restore
                    | Command::Help
                    | Command::Version
            ) {
                let mut r = refusal(
                    400,
                    "not a table command",
                    format!(
                        "command {i} ({}) does not change the table; use the GET endpoints",
                        argv.join(" ")
                    ),
                );
                r.1.index = Some(i);
                return Err(r);
            }
            cmds.push(cmd);
        }
        self.apply(&cmds)?;
        Ok(cmds.len())
    }

    /// Applies parsed commands as one transaction.
    pub fn apply(&mut self, cmds: &[Command]) -> Result<(), Refusal> {
        let mut next = self.table.clone();
        next.apply_all(cmds).map_err(|(i, e)| {
            (
                409,
                ApiError {
                    message: e.to_string(),
                    detail: e.detail(),
                    errno: e.errno(),
                    index: Some(i),
                },
            )
        })?;
        if let Err(e) = self.dp.sync(&next, &self.sysctls, &self.l2) {
            // Put back what the datapath held (sync refuses before writing
            // for unsupported rules; this covers a map error half-way).
            if let Err(e2) = self.dp.sync(&self.table, &self.sysctls, &self.l2) {
                log::error(
                    "restoring the datapath after a failed sync",
                    &[("error", json!(e2.to_string()))],
                );
            }
            return Err(refusal(
                422,
                "The datapath refused the rules",
                e.to_string(),
            ));
        }
        let zero: Vec<Option<ServiceKey>> = cmds
            .iter()
            .filter_map(|c| match c {
                Command::Zero(k) => Some(*k),
                _ => None,
            })
            .collect();
        self.table = next;
        for key in zero {
            if let Err(e) = self.dp.zero(key.as_ref()) {
                log::error("zeroing counters", &[("error", json!(e.to_string()))]);
            }
            self.zero_estimators(key.as_ref());
        }
        self.save_rules();
        log::info(
            "rules applied",
            &[
                ("commands", json!(cmds.len())),
                ("services", json!(self.table.len())),
            ],
        );
        Ok(())
    }

    /// Replaces the whole table with `rules` (ipvsadm `-R` text), atomically.
    pub fn replace_rules(&mut self, rules: &str) -> Result<(), Refusal> {
        let mut cmds = vec![Command::Clear];
        cmds.extend(parse_restore(rules, &NumericOnly).map_err(|e| {
            refusal(
                400,
                e.error.message.clone(),
                format!("line {}: {}", e.line, e.error.message),
            )
        })?);
        self.apply(&cmds)
    }

    /// The table with the datapath's counts and counters and the
    /// estimators' rates.
    pub fn snapshot(&self) -> Result<TableSnapshot, Refusal> {
        let mut snap = self
            .dp
            .snapshot(&self.table)
            .map_err(|e| refusal(500, "reading the datapath", e.to_string()))?;
        for (entry, svc) in snap.services.iter_mut().zip(self.table.services()) {
            if let Some(e) = self.estimators.get(&EstKey::Service(svc.cfg.key)) {
                entry.rates = e.rates();
            }
            for (de, d) in entry.dests.iter_mut().zip(&svc.dests) {
                if let Some(e) = self.estimators.get(&EstKey::Dest(d.id)) {
                    de.rates = e.rates();
                }
            }
        }
        Ok(snap)
    }

    pub fn timeouts(&self) -> wire::Timeouts {
        let t = &self.table.timeouts;
        wire::Timeouts::from(TimeoutSet {
            tcp: t.tcp[xvs_core::conn::tcp::TcpState::Established.index()],
            tcp_fin: t.tcp[xvs_core::conn::tcp::TcpState::FinWait.index()],
            udp: t.udp,
        })
    }

    pub fn status(&self) -> wire::Status {
        let packets = match self.dp.counters() {
            Ok(c) => vec![
                ("passed".into(), c.passed),
                ("forwarded".into(), c.forwarded),
                ("malformed".into(), c.malformed),
                ("no_dest".into(), c.no_dest),
                ("unavailable".into(), c.unavailable),
                ("replied".into(), c.replied),
                ("fragment".into(), c.fragment),
                ("conn_full".into(), c.conn_full),
                ("local".into(), c.local),
                ("tun_dropped".into(), c.tun_dropped),
                ("no_neigh".into(), c.no_neigh),
                ("no_route".into(), c.no_route),
            ],
            Err(_) => Vec::new(),
        };
        wire::Status {
            version: env!("CARGO_PKG_VERSION").into(),
            name: self.name.clone(),
            interfaces: self
                .attached
                .iter()
                .map(|a| wire::Interface {
                    name: a.name.clone(),
                    mode: a.mode.into(),
                })
                .collect(),
            pin_dir: self.pin_dir.display().to_string(),
            adopted: self.adopted,
            connections: self.dp.conn_count() as u64,
            uptime_secs: self.started.elapsed().as_secs(),
            packets,
            sysctls: self
                .sysctls
                .values()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }

    /// The periodic work: connection expiry, the dest trash, and the 2 s
    /// rate estimator.
    pub fn tick(&mut self) {
        if let Err(e) = self.dp.expire() {
            log::error("expiring connections", &[("error", json!(e.to_string()))]);
        }
        let now = self.now();
        self.table.tick(now);
        self.dp.forget_purged(&self.table);
        while self.next_estimate <= now {
            let at = self.next_estimate;
            self.estimate(at);
            self.next_estimate = Time(at.0 + Estimator::PERIOD_MS);
        }
    }

    fn samples(&self) -> Vec<(EstKey, Counters)> {
        let mut v = Vec::new();
        if let Ok(t) = self.dp.total_stats() {
            v.push((EstKey::Total, t));
        }
        for svc in self.table.services() {
            if let Ok(Some(s)) = self.dp.service_stats(&svc.cfg.key) {
                v.push((EstKey::Service(svc.cfg.key), s));
            }
            for d in &svc.dests {
                if let Ok(Some(s)) = self.dp.real_stats(d.id) {
                    v.push((EstKey::Dest(d.id), s));
                }
            }
        }
        v
    }

    fn estimate(&mut self, now: Time) {
        let mut live = HashMap::new();
        for (k, c) in self.samples() {
            let mut est = self.estimators.remove(&k).unwrap_or_else(|| {
                Estimator::new(Time(now.0.saturating_sub(Estimator::PERIOD_MS)), &c)
            });
            est.sample(now, &c);
            live.insert(k, est);
        }
        self.estimators = live;
    }

    fn zero_estimators(&mut self, key: Option<&ServiceKey>) {
        let samples = self.samples();
        for (k, c) in samples {
            let hit = match (key, k) {
                (None, _) => true,
                (Some(s), EstKey::Service(k2)) => *s == k2,
                (Some(s), EstKey::Dest(id)) => {
                    self.table.service_of(id).map(|x| x.cfg.key) == Some(*s)
                }
                (Some(_), EstKey::Total) => false,
            };
            if hit {
                if let Some(e) = self.estimators.get_mut(&k) {
                    e.zero(&c);
                }
            }
        }
    }

    /// The table as ipvsadm commands that rebuild it exactly (services,
    /// real servers in an order that reproduces the kernel's list order,
    /// thresholds, timeouts, sync daemons).
    pub fn rules_text(&self) -> String {
        let mut cmds = Vec::new();
        let snap = self.table.snapshot();
        for s in &snap.services {
            cmds.push(Command::AddService(s.cfg.clone()));
            for d in s.dests.iter().rev() {
                cmds.push(Command::AddDest(s.cfg.key, d.cfg));
            }
        }
        let t = self.timeouts();
        let defaults = IpvsTable::new();
        if self.table.timeouts != defaults.timeouts {
            cmds.push(Command::SetTimeout(t.into()));
        }
        for d in self.table.daemons() {
            cmds.push(Command::StartDaemon(d.clone()));
        }
        let mut out = String::new();
        for c in &cmds {
            out.push_str(&to_argv(c).join(" "));
            out.push('\n');
        }
        out
    }

    /// Writes the rules file (atomically: a temporary file renamed over it).
    fn save_rules(&self) {
        if let Err(e) = write_atomic(&self.rules_file, self.rules_text().as_bytes()) {
            log::error(
                "saving the rules",
                &[
                    ("file", json!(self.rules_file.display().to_string())),
                    ("error", json!(e.to_string())),
                ],
            );
        }
    }
}

pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(tmp, path)
}
