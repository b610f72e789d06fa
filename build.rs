//! Records build provenance for result files (`report::RunMeta`): git revision (with `-dirty`
//! when tracked files had uncommitted changes), rustc version, target triple and profile.
//! Dependency-free and fast: three short subprocesses. Every failure falls back to "unknown";
//! a build never fails because git is missing or the tree is not a repository.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &str, args: &[&str], dir: &Path) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());

    let rev = run("git", &["rev-parse", "--short=12", "HEAD"], &manifest).filter(|s| !s.is_empty());
    let git_rev = match rev {
        Some(rev) => {
            // Untracked files (results/, downloaded data) do not count as dirty; modified or
            // staged tracked files do.
            let dirty = run(
                "git",
                &["status", "--porcelain", "--untracked-files=no"],
                &manifest,
            )
            .map(|s| !s.is_empty())
            .unwrap_or(false);
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        None => "unknown".to_string(),
    };

    // Rerun when HEAD moves (checkout, commit), when the index changes (add, commit) and when
    // sources change (the dirty flag). `.git` may be a file (worktrees), so ask git for the
    // real locations instead of assuming `.git/HEAD`.
    if let Some(git_dir) = run("git", &["rev-parse", "--git-dir"], &manifest) {
        let git_dir = manifest.join(git_dir);
        for f in ["HEAD", "index"] {
            let p = git_dir.join(f);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
        let common = run("git", &["rev-parse", "--git-common-dir"], &manifest)
            .map(|c| manifest.join(c))
            .unwrap_or_else(|| git_dir.clone());
        if let Some(head_ref) = run("git", &["symbolic-ref", "-q", "HEAD"], &manifest) {
            let p = common.join(head_ref);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
        let packed = common.join("packed-refs");
        if packed.exists() {
            println!("cargo:rerun-if-changed={}", packed.display());
        }
    }
    for p in ["src", "Cargo.toml", "build.rs"] {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-env-changed=RUSTC");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let rustc_version = run(&rustc, &["--version"], &manifest)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_string());

    println!("cargo:rustc-env=EOSBENCH_GIT_REV={git_rev}");
    println!("cargo:rustc-env=EOSBENCH_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=EOSBENCH_TARGET={target}");
    println!("cargo:rustc-env=EOSBENCH_PROFILE={profile}");
}
