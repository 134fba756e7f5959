//! The LVS-TUN BPF objects, compiled like `bpf/xvs.c` (see `build.rs`):
//! `bpf/decap.c` (the real-server decapsulation program, embedded by
//! `src/decap.rs`) and `bpf/encap_test.c` (a test-only director that
//! exercises `bpf/include/encap.h`, loaded by `tests/tun_*.rs`).
//! Kept in its own file so `build.rs` needs only a two-line hook.

use std::{env, path::Path, process::Command};

pub fn compile(bpf_dir: &Path, out_dir: &Path) {
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let target = match env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
        Ok("big") => "bpfeb",
        _ => "bpfel",
    };
    for name in ["decap", "encap_test"] {
        let src = bpf_dir.join(format!("{name}.c"));
        let obj = out_dir.join(format!("{name}.bpf.o"));
        let mut cmd = Command::new(&clang);
        cmd.args(["-O2", "-g", "-target", target])
            .args(["-Wall", "-Wextra", "-Werror"])
            .arg("-I")
            .arg(bpf_dir.join("include"));
        if let Some(dir) = super::multiarch_include() {
            cmd.arg("-I").arg(dir);
        }
        cmd.arg("-c").arg(&src).arg("-o").arg(&obj);
        let status = cmd.status().unwrap_or_else(|e| {
            panic!(
                "xvs-datapath: could not run `{clang}`: {e}\n\
                 On Debian/Ubuntu: apt-get install -y clang llvm libbpf-dev"
            )
        });
        if !status.success() {
            panic!("\n\nxvs-datapath: `{cmd:?}` failed ({status}).\n");
        }
    }
}
