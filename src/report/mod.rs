//! Writing results: run metadata, run directories, JSON and streaming CSV. This module computes
//! nothing; it only puts bytes on disk, safely.
//!
//! Layout (DESIGN §8): `results/<experiment>/<run-id>/` holding `run.json` (configuration and
//! [`RunMeta`]), `steps.csv`, `eigs.csv` and figures. Column names carry units (`t_step_ms`).
//!
//! Two write disciplines, chosen by how a file is produced:
//! - **Whole files** (JSON, checkpoints, figures) go through [`atomic_write`]: the bytes land in a
//!   temporary file in the same directory, are fsynced, and the temporary is renamed over the
//!   final name. A reader (or a crash) sees either the old file or the complete new one, never a
//!   half-written file.
//! - **Streaming tables** ([`CsvWriter`]) are append-only and written to their final name
//!   directly; see [`CsvWriter`] for why that is safe.

mod meta;
mod plot;
mod png;
mod run_dir;
mod tables;

pub use meta::{
    build_info, format_rfc3339_utc, format_run_id_utc, utc_civil, BuildInfo, RunMeta, UtcCivil,
};
pub use plot::{line_figure, training_figure, RunCurves, Series};
pub use png::svg_to_png;
pub use run_dir::{CsvField, CsvWriter, RunDir};
pub use tables::{eig_columns, eig_row, step_row, STEP_COLUMNS};

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary files of concurrent writers within one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: parent directories are created, the data goes to a
/// temporary file `.<name>.tmp-<pid>-<n>` in the same directory (same file system, so the rename
/// is atomic), is fsynced, and is renamed over `path`; the directory is then fsynced so the
/// rename itself survives a power loss (best effort: not every platform can sync a directory).
/// On any error the temporary file is removed and `path` is left as it was.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cannot write to '{}': the path does not name a file",
                path.display()
            ),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot create directory '{}' for '{}': {e}",
                dir.display(),
                path.display()
            ),
        )
    })?;

    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::new(
            e.kind(),
            format!(
                "cannot write '{}' (via temporary '{}'): {e}",
                path.display(),
                tmp.display()
            ),
        ));
    }
    // Persist the directory entry; failure here does not undo a completed rename.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    static N: AtomicU64 = AtomicU64::new(0);

    /// A fresh, empty directory under the system temp dir; removed on drop.
    pub struct TempDir(pub PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let p = std::env::temp_dir().join(format!(
                "eosbench-test-{tag}-{}-{}-{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).expect("create temp dir");
            TempDir(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::TempDir;
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn atomic_write_creates_parents_and_replaces() {
        let t = TempDir::new("atomic");
        let p = t.path().join("a/b/c.json");
        atomic_write(&p, b"first").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"first");
        atomic_write(&p, b"second, longer").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second, longer");
        atomic_write(&p, b"").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"");
        // No temporary files are left behind.
        assert_eq!(entries(&t.path().join("a/b")), vec!["c.json".to_string()]);
    }

    #[test]
    fn atomic_write_failure_keeps_old_file_and_cleans_up() {
        let t = TempDir::new("atomic-fail");
        // The target is an existing non-empty directory: rename must fail.
        let target = t.path().join("occupied");
        fs::create_dir_all(target.join("inner")).unwrap();
        let err = atomic_write(&target, b"data").unwrap_err();
        assert!(err.to_string().contains("occupied"), "{err}");
        assert!(target.join("inner").is_dir());
        assert_eq!(entries(t.path()), vec!["occupied".to_string()]);
    }

    #[test]
    fn atomic_write_rejects_path_without_file_name() {
        let t = TempDir::new("atomic-noname");
        let err = atomic_write(&t.path().join(".."), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn atomic_write_parent_is_a_file() {
        let t = TempDir::new("atomic-parent");
        let f = t.path().join("plain");
        fs::write(&f, b"x").unwrap();
        let err = atomic_write(&f.join("child.json"), b"y").unwrap_err();
        assert!(err.to_string().contains("plain"), "{err}");
        assert_eq!(fs::read(&f).unwrap(), b"x");
    }
}
