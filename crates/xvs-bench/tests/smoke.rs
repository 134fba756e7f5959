//! Smoke test of the benchmark runner: its quick mode against one peer
//! (HAProxy) for a couple of seconds must produce a parsable result. Not a
//! timing assertion. Needs root; installs the benchmark's packages if they
//! are missing (bench/install-deps.sh).

use std::{path::Path, process::Command};

use xvs_bench::{peers::Contender, report, Workload};

#[test]
fn quick_run_against_haproxy_produces_a_parsable_result() {
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
            "haproxy",
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
    for w in [Workload::KeepAlive, Workload::Close] {
        let s = samples
            .iter()
            .find(|s| s.contender == Contender::Haproxy && s.workload == w)
            .unwrap_or_else(|| panic!("no haproxy {} sample in {samples:?}", w.name()));
        assert!(s.requests > 0 && s.rps > 0.0, "{s:?}");
        assert!(s.p50_us.is_finite() && s.p99_us >= s.p50_us, "{s:?}");
    }
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("| haproxy |"), "{md}");
}
