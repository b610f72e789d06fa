//! `data verify`: check a CIFAR-10 directory against the official release.
//!
//! For each of the six files: presence, size, record count, SHA-256 against
//! [`OFFICIAL_FILES`], and label validity. Per split: the record count (50 000 / 10 000) and the
//! per-class histogram (5000 / 1000 per class), plus the first ten labels of each split against
//! [`FIRST_TRAIN_LABELS`] / [`FIRST_TEST_LABELS`]. Problems are recorded in the report, never
//! raised; only a missing directory is an error.

use std::fmt;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::cifar::{
    read_file, Split, CLASSES, FIRST_TEST_LABELS, FIRST_TRAIN_LABELS, OFFICIAL_FILES, RECORD_BYTES,
};
use super::{DataDir, DataError};

/// State of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// Size, labels and SHA-256 all match.
    Ok,
    /// The file does not exist.
    Missing,
    /// Could not be read (message of the I/O error).
    Unreadable(String),
    /// Length not a positive multiple of 3073.
    BadSize,
    /// A label outside 0–9; the first such record and value.
    BadLabel { record: usize, label: u8 },
    /// Readable and well-formed, but the SHA-256 differs from the official digest.
    ShaMismatch,
}

/// Result for one of the six files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    pub name: &'static str,
    pub split: Split,
    /// File length; `None` if missing or unreadable.
    pub bytes: Option<u64>,
    /// Whole records (`bytes / 3073`) when the length is a multiple of 3073.
    pub records: Option<usize>,
    /// Lower-case hex SHA-256 of the contents, if read.
    pub sha256: Option<String>,
    pub expected_sha256: &'static str,
    pub status: FileStatus,
}

impl FileReport {
    pub fn sha_ok(&self) -> bool {
        self.sha256.as_deref() == Some(self.expected_sha256)
    }
}

/// Per-split totals (over the well-formed files of the split).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitReport {
    pub split: Split,
    pub records: usize,
    pub expected_records: usize,
    pub class_counts: [usize; CLASSES],
    /// First ten labels of the split (fewer if the split is shorter).
    pub first_labels: Vec<u8>,
    pub expected_first_labels: [u8; 10],
}

impl SplitReport {
    pub fn expected_per_class(&self) -> usize {
        self.expected_records / CLASSES
    }

    pub fn is_ok(&self) -> bool {
        self.records == self.expected_records
            && self
                .class_counts
                .iter()
                .all(|&c| c == self.expected_per_class())
            && self.first_labels[..] == self.expected_first_labels[..]
    }
}

/// Everything `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub dir: PathBuf,
    pub files: Vec<FileReport>,
    pub train: SplitReport,
    pub test: SplitReport,
}

impl VerifyReport {
    /// True when every file matches its official digest and both splits have the official
    /// counts, histograms and first labels.
    pub fn all_ok(&self) -> bool {
        self.files.iter().all(|f| f.status == FileStatus::Ok)
            && self.train.is_ok()
            && self.test.is_ok()
    }
}

/// Check the six files in `dir`. Only a missing directory is an error; every other problem is
/// recorded in the returned report (see [`VerifyReport::all_ok`]).
pub fn verify(dir: impl Into<DataDir>) -> Result<VerifyReport, DataError> {
    let dir = dir.into();
    dir.check_exists()?;
    let mut files = Vec::with_capacity(OFFICIAL_FILES.len());
    let mut train = SplitReport {
        split: Split::Train,
        records: 0,
        expected_records: Split::Train.official_records(),
        class_counts: [0; CLASSES],
        first_labels: Vec::new(),
        expected_first_labels: FIRST_TRAIN_LABELS,
    };
    let mut test = SplitReport {
        split: Split::Test,
        records: 0,
        expected_records: Split::Test.official_records(),
        class_counts: [0; CLASSES],
        first_labels: Vec::new(),
        expected_first_labels: FIRST_TEST_LABELS,
    };
    for off in OFFICIAL_FILES {
        let path = dir.path.join(off.name);
        let mut rep = FileReport {
            name: off.name,
            split: off.split,
            bytes: None,
            records: None,
            sha256: None,
            expected_sha256: off.sha256,
            status: FileStatus::Ok,
        };
        let bytes = match read_file(&path) {
            Ok(b) => b,
            Err(DataError::FileMissing { .. }) => {
                rep.status = FileStatus::Missing;
                files.push(rep);
                continue;
            }
            Err(e) => {
                rep.status = FileStatus::Unreadable(e.to_string());
                files.push(rep);
                continue;
            }
        };
        rep.bytes = Some(bytes.len() as u64);
        rep.sha256 = Some(hex(&Sha256::digest(&bytes)));
        let sr = match off.split {
            Split::Train => &mut train,
            Split::Test => &mut test,
        };
        if bytes.is_empty() || bytes.len() % RECORD_BYTES != 0 {
            rep.status = FileStatus::BadSize;
        } else {
            let n = bytes.len() / RECORD_BYTES;
            rep.records = Some(n);
            let mut counts = [0usize; CLASSES];
            let mut first = Vec::new();
            for (record, rec) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
                let label = rec[0];
                if label as usize >= CLASSES {
                    rep.status = FileStatus::BadLabel { record, label };
                    break;
                }
                counts[label as usize] += 1;
                if sr.first_labels.len() + first.len() < 10 {
                    first.push(label);
                }
            }
            if rep.status == FileStatus::Ok {
                sr.records += n;
                for (t, c) in sr.class_counts.iter_mut().zip(counts) {
                    *t += c;
                }
                sr.first_labels.extend(first);
            }
        }
        if rep.status == FileStatus::Ok && !rep.sha_ok() {
            rep.status = FileStatus::ShaMismatch;
        }
        files.push(rep);
    }
    Ok(VerifyReport {
        dir: dir.path,
        files,
        train,
        test,
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl fmt::Display for FileStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileStatus::Ok => write!(f, "ok"),
            FileStatus::Missing => write!(f, "MISSING"),
            FileStatus::Unreadable(e) => write!(f, "UNREADABLE ({e})"),
            FileStatus::BadSize => write!(f, "BAD SIZE (not a multiple of {RECORD_BYTES})"),
            FileStatus::BadLabel { record, label } => {
                write!(f, "BAD LABEL {label} at record {record}")
            }
            FileStatus::ShaMismatch => write!(f, "SHA-256 MISMATCH"),
        }
    }
}

fn labels_str(l: &[u8]) -> String {
    l.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for SplitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = |ok: bool| if ok { "ok" } else { "MISMATCH" };
        let per = self.expected_per_class();
        writeln!(
            f,
            "{} split: {} records (expected {}) {}",
            self.split,
            self.records,
            self.expected_records,
            mark(self.records == self.expected_records)
        )?;
        let counts = self
            .class_counts
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        writeln!(
            f,
            "  per class: {} (expected {} each) {}",
            counts,
            per,
            mark(self.class_counts.iter().all(|&c| c == per))
        )?;
        writeln!(
            f,
            "  first ten labels: {} (expected {}) {}",
            labels_str(&self.first_labels),
            labels_str(&self.expected_first_labels),
            mark(self.first_labels[..] == self.expected_first_labels[..])
        )
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "CIFAR-10 binary files in {}", self.dir.display())?;
        writeln!(
            f,
            "{:<18} {:>10} {:>8}  {:<8} status",
            "file", "bytes", "records", "sha256"
        )?;
        for r in &self.files {
            let bytes = r.bytes.map_or("-".into(), |b| b.to_string());
            let records = r.records.map_or("-".into(), |n| n.to_string());
            let sha = match &r.sha256 {
                None => "-",
                Some(_) if r.sha_ok() => "ok",
                Some(_) => "MISMATCH",
            };
            writeln!(
                f,
                "{:<18} {:>10} {:>8}  {:<8} {}",
                r.name, bytes, records, sha, r.status
            )?;
            if let (Some(got), false) = (&r.sha256, r.sha_ok()) {
                writeln!(f, "    got      {got}")?;
                writeln!(f, "    expected {}", r.expected_sha256)?;
            }
        }
        write!(f, "{}", self.train)?;
        write!(f, "{}", self.test)?;
        if self.all_ok() {
            writeln!(
                f,
                "ALL OK: identical to the official CIFAR-10 binary release"
            )
        } else {
            writeln!(
                f,
                "NOT OK: re-download with scripts/fetch-cifar10.sh (or point --data-dir / \
                 EOSBENCH_DATA at an official copy)"
            )
        }
    }
}
