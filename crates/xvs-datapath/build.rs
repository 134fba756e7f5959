//! Compiles the BPF C sources under `bpf/` with clang into `$OUT_DIR/xvs.bpf.o`,
//! which `src/lib.rs` embeds.
//!
//! `CLANG` overrides the compiler (default: `clang` on `PATH`). Headers come
//! from the system: `linux/*.h` (linux-libc-dev), `bpf/*.h` (libbpf-dev) and
//! the multiarch `asm/*.h` directory (`/usr/include/<triple>` on Debian).

mod build_tun;

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let bpf_dir = manifest_dir.join("bpf");

    println!("cargo:rerun-if-env-changed=CLANG");
    rerun_for_dir(&bpf_dir);

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let target = match env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
        Ok("big") => "bpfeb",
        _ => "bpfel",
    };

    let src = bpf_dir.join("xvs.c");
    let obj = out_dir.join("xvs.bpf.o");
    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", target])
        .args(["-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(bpf_dir.join("include"));
    if let Some(dir) = multiarch_include() {
        cmd.arg("-I").arg(dir);
    }
    cmd.arg("-c").arg(&src).arg("-o").arg(&obj);

    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "\n\nxvs-datapath: `{clang}` not found. The BPF programs are C compiled with clang.\n\
             On Debian/Ubuntu: apt-get install -y clang llvm libbpf-dev\n\
             (or set CLANG=/path/to/clang)\n"
        ),
        Err(e) => panic!("xvs-datapath: could not run `{clang}`: {e}"),
    };
    if !status.success() {
        panic!(
            "\n\nxvs-datapath: `{cmd:?}` failed ({status}).\n\
             If a header such as <bpf/bpf_helpers.h> or <asm/types.h> is missing:\n\
             apt-get install -y libbpf-dev linux-libc-dev\n"
        );
    }
    build_tun::compile(&bpf_dir, &out_dir);
}

/// Debian keeps `asm/*.h` under `/usr/include/<multiarch triple>`, which clang
/// does not search when targeting BPF.
fn multiarch_include() -> Option<PathBuf> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let triple = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        _ => return None,
    };
    let dir = Path::new("/usr/include").join(triple);
    dir.is_dir().then_some(dir)
}

fn rerun_for_dir(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rerun_for_dir(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
