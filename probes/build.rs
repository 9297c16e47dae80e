//! Compiles the C eBPF programs in `bpf/` with clang into `$OUT_DIR`, for `include_bytes!`.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAMS: &[&str] = &["bpf_lxc", "bpf_empty"];

fn main() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let clang = std::env::var("WEIR_CLANG").unwrap_or_else(|_| "clang".to_string());
    println!("cargo:rerun-if-env-changed=WEIR_CLANG");
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-changed=include");

    let multiarch = multiarch_include();
    for name in PROGRAMS {
        let src = manifest.join("bpf").join(format!("{name}.c"));
        let obj = out.join(format!("{name}.o"));
        let mut cmd = Command::new(&clang);
        cmd.args(["-O2", "-g", "-target", "bpf", "-mcpu=v3"])
            .args(["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"])
            .arg("-I")
            .arg(manifest.join("include"))
            .arg("-I")
            .arg(manifest.join("bpf"));
        if let Some(dir) = &multiarch {
            cmd.arg("-I").arg(dir);
        }
        cmd.arg("-c").arg(&src).arg("-o").arg(&obj);
        let status = cmd.status().unwrap_or_else(|e| {
            panic!(
                "cannot run `{clang}` to build the eBPF programs ({e}). Install clang, llvm and libbpf-dev \
                 (apt-get install -y clang llvm libbpf-dev), or set WEIR_CLANG to a clang binary."
            )
        });
        if !status.success() {
            panic!("`{clang}` failed to compile {} ({status})", src.display());
        }
    }
}

/// Debian keeps `asm/types.h` under the multiarch include directory, which `-target bpf`
/// does not search by default.
fn multiarch_include() -> Option<PathBuf> {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let triple = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => return Some(Path::new("/usr/include").join(format!("{other}-linux-gnu"))),
    };
    let dir = Path::new("/usr/include").join(triple);
    dir.is_dir().then_some(dir)
}
