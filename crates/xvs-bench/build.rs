//! Compiles the benchmark's own BPF programs (`bpf/bench.c`: the packet
//! generator, the no-op forwarder and the counting sink) with clang into
//! `$OUT_DIR/bench.bpf.o`.

use std::{env, path::PathBuf, process::Command};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let src = manifest.join("bpf/bench.c");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", "bpfel", "-Wall", "-Werror"]);
    let triple = format!(
        "/usr/include/{}-linux-gnu",
        env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default()
    );
    if std::path::Path::new(&triple).is_dir() {
        cmd.arg("-I").arg(&triple);
    }
    cmd.arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(out.join("bench.bpf.o"));
    let st = cmd.status().unwrap_or_else(|e| {
        panic!("xvs-bench: running {clang}: {e} (apt-get install clang libbpf-dev)")
    });
    assert!(st.success(), "xvs-bench: {cmd:?} failed: {st}");
}
