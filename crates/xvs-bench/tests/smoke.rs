//! Smoke test of the benchmark runner: its quick mode against one peer
//! (HAProxy) and one xvs contender (DR, through xvs-datapath) for a couple
//! of seconds, plus one packet-rate run of the no-op XDP forwarder and xvs
//! DR in XDP, established and new flows, must produce a parsable result
//! with samples of each. Not a timing assertion. Needs root; installs the
//! benchmark's packages if they are missing (bench/install-deps.sh).

use std::{path::Path, process::Command};

use xvs_bench::{peers::Contender, report, Workload};

#[test]
fn quick_run_against_haproxy_and_xvs_dr_produces_a_parsable_result() {
    xvs_testhost::require_root().expect("the benchmark smoke test needs root");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if ["wrk", "haproxy", "nginx", "curl"]
        .iter()
        .any(|t| !xvs_testhost::cmd::have_tool(t))
    {
        let st = Command::new("bash")
            .arg(root.join("bench/install-deps.sh"))
            .status()
            .expect("running bench/install-deps.sh");
        assert!(st.success(), "bench/install-deps.sh failed: {st}");
    }
    let dir = tempfile::tempdir().unwrap();
    let tsv = dir.path().join("samples.tsv");
    let md = dir.path().join("report.md");
    let out = Command::new(env!("CARGO_BIN_EXE_xvs-bench"))
        .args([
            "--quick",
            "--only",
            "haproxy,xvs-dr",
            "--parts",
            "wrk,rate",
            "--forwarders",
            "noop-xdp,xvs-dr-xdp",
            "--rate-duration",
            "1",
            "--rate-repeats",
            "1",
            "--flows",
            "1000",
            "--duration",
            "2",
            "--repeats",
            "1",
            "--no-warmup",
        ])
        .arg("--tsv")
        .arg(&tsv)
        .arg("--report")
        .arg(&md)
        .output()
        .expect("running xvs-bench");
    assert!(
        out.status.success(),
        "xvs-bench failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let samples = report::parse_tsv(&std::fs::read_to_string(&tsv).unwrap()).unwrap();
    for c in [Contender::Haproxy, Contender::XvsDr] {
        for w in [Workload::KeepAlive, Workload::Close] {
            let s = samples
                .iter()
                .find(|s| s.contender == c && s.workload == w)
                .unwrap_or_else(|| panic!("no {} {} sample in {samples:?}", c.name(), w.name()));
            assert!(s.requests > 0 && s.rps > 0.0, "{s:?}");
            assert!(s.p50_us.is_finite() && s.p99_us >= s.p50_us, "{s:?}");
            assert_eq!(s.errors, 0, "{s:?}");
        }
    }
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.contains("| haproxy |") && md.contains("| xvs-dr |"),
        "{md}"
    );
    // The packet-rate rows: frames reached the sink through both.
    for f in ["noop-xdp", "xvs-dr-xdp"] {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {f} | tcp |")))
            .unwrap_or_else(|| panic!("no packet-rate row for {f}: {md}"));
        let received: u64 = row
            .trim_end_matches('|')
            .rsplit('|')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{row}: {e}"));
        assert!(received > 0, "{row}");
    }
    // New flows (--quick measures noop-xdp and xvs-dr-xdp): SYNs of new
    // flows reached the sink, and xvs made a connection for each of them.
    for f in ["noop-xdp", "xvs-dr-xdp"] {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {f} |")) && l.contains("conn/s"))
            .unwrap_or_else(|| panic!("no new-flows row for {f}: {md}"));
        let cols: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let received: u64 = cols[cols.len() - 1]
            .parse()
            .unwrap_or_else(|e| panic!("{row}: {e}"));
        assert!(received > 0, "{row}");
        if f == "xvs-dr-xdp" {
            let made: u64 = cols[cols.len() - 3]
                .parse()
                .unwrap_or_else(|e| panic!("{row}: {e}"));
            assert!(made >= received, "{row}");
        }
    }
    assert!(
        md.contains("| xvs-dr-xdp new connections/s ≥ 10× HAProxy mode tcp |"),
        "{md}"
    );
}
