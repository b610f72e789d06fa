//! The CIFAR-10 binary format: constants, official file digests, and the raw reader/writer.
//!
//! A batch file is a sequence of 3073-byte records with no header and nothing between them:
//! byte 0 is the label (0–9), then 1024 red, 1024 green and 1024 blue bytes, each a 32×32
//! plane in row-major order. That is already the channel-major (CHW) flattening the reference
//! code uses, so a record's 3072 image bytes are copied as they are; feature `j` of an image is
//! `channel = j / 1024`, `row = (j % 1024) / 32`, `col = j % 32`.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use super::{DataDir, DataError};

/// Bytes per record: one label byte plus the image.
pub const RECORD_BYTES: usize = 3073;
/// Bytes per image: 3 planes of 32×32.
pub const IMAGE_BYTES: usize = 3072;
/// Bytes per colour plane.
pub const PLANE_BYTES: usize = 1024;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Records in each of the six official files.
pub const RECORDS_PER_FILE: usize = 10_000;
/// Records in the training split (data_batch_1..5).
pub const TRAIN_RECORDS: usize = 50_000;
/// Records in the test split (test_batch).
pub const TEST_RECORDS: usize = 10_000;

/// Class names in label order (as in `batches.meta.txt`).
pub const CLASS_NAMES: [&str; CLASSES] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Training files, in the order their records are concatenated.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test file.
pub const TEST_FILE: &str = "test_batch.bin";

/// One official file and its SHA-256 digest (lower-case hex).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfficialFile {
    pub name: &'static str,
    pub sha256: &'static str,
    pub split: Split,
}

/// The six `.bin` files of the official `cifar-10-binary.tar.gz`, with their SHA-256 digests.
/// (The MD5s of these files match the ones published for the official archive; the SHA-256
/// values were computed from those files.)
pub const OFFICIAL_FILES: [OfficialFile; 6] = [
    OfficialFile {
        name: "data_batch_1.bin",
        sha256: "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
        split: Split::Train,
    },
    OfficialFile {
        name: "data_batch_2.bin",
        sha256: "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
        split: Split::Train,
    },
    OfficialFile {
        name: "data_batch_3.bin",
        sha256: "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
        split: Split::Train,
    },
    OfficialFile {
        name: "data_batch_4.bin",
        sha256: "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
        split: Split::Train,
    },
    OfficialFile {
        name: "data_batch_5.bin",
        sha256: "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
        split: Split::Train,
    },
    OfficialFile {
        name: "test_batch.bin",
        sha256: "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
        split: Split::Test,
    },
];

/// Official download and the MD5 of the archive (used by `scripts/fetch-cifar10.sh`).
pub const ARCHIVE_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
pub const ARCHIVE_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

/// First ten labels of the official training and test splits (a cheap order check).
pub const FIRST_TRAIN_LABELS: [u8; 10] = [6, 9, 9, 4, 1, 1, 2, 7, 8, 3];
pub const FIRST_TEST_LABELS: [u8; 10] = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1];

/// Training or test split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// data_batch_1.bin … data_batch_5.bin, concatenated in that order (50 000 records).
    Train,
    /// test_batch.bin (10 000 records).
    Test,
}

impl Split {
    /// The files of this split, in record order.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Split::Train => &TRAIN_FILES,
            Split::Test => std::slice::from_ref(&TEST_FILE),
        }
    }

    /// Number of records in the official split.
    pub fn official_records(self) -> usize {
        match self {
            Split::Train => TRAIN_RECORDS,
            Split::Test => TEST_RECORDS,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Undecoded records: `images` is `n × 3072` bytes (record layout: R, G, B planes), `labels`
/// has `n` entries in `0..CLASSES`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawSplit {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl RawSplit {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 3072 bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }

    /// Records per class (length [`CLASSES`]).
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut c = [0usize; CLASSES];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }

    /// The records serialized in the binary file layout.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * RECORD_BYTES);
        for (i, &l) in self.labels.iter().enumerate() {
            out.push(l);
            out.extend_from_slice(self.image(i));
        }
        out
    }

    /// Append the records of `bytes` (a whole batch file read from `path`), checking the length
    /// and every label.
    fn append_file_bytes(&mut self, path: &Path, bytes: &[u8]) -> Result<(), DataError> {
        let len = bytes.len() as u64;
        let rb = RECORD_BYTES as u64;
        if len == 0 || !len.is_multiple_of(rb) {
            return Err(DataError::BadSize {
                path: path.to_path_buf(),
                bytes: len,
                whole: len / rb,
                rest: len % rb,
            });
        }
        let n = bytes.len() / RECORD_BYTES;
        self.labels.reserve(n);
        self.images.reserve(n * IMAGE_BYTES);
        for (record, rec) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
            let label = rec[0];
            if label as usize >= CLASSES {
                return Err(DataError::BadLabel {
                    path: path.to_path_buf(),
                    record,
                    label,
                });
            }
            self.labels.push(label);
            self.images.extend_from_slice(&rec[1..]);
        }
        Ok(())
    }
}

/// Read a whole file; "not found" becomes [`DataError::FileMissing`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut buf = Vec::new();
    if let Ok(m) = f.metadata() {
        buf.reserve(m.len() as usize);
    }
    f.read_to_end(&mut buf)
        .map_err(|e| DataError::io(path, e))?;
    Ok(buf)
}

/// Read one batch file. Errors: [`DataError::FileMissing`], [`DataError::BadSize`] (length not
/// a positive multiple of 3073), [`DataError::BadLabel`] (first label outside 0–9, with its
/// record index), [`DataError::Io`].
pub fn read_batch_file(path: impl AsRef<Path>) -> Result<RawSplit, DataError> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    let mut raw = RawSplit::default();
    raw.append_file_bytes(path, &bytes)?;
    Ok(raw)
}

/// Read a split from a CIFAR-10 directory: train = data_batch_1..5 in order, test = test_batch.
/// A missing directory gives [`DataError::DirNotFound`] with the rule that chose it.
pub fn load_raw(dir: impl Into<DataDir>, split: Split) -> Result<RawSplit, DataError> {
    let dir = dir.into();
    dir.check_exists()?;
    let mut raw = RawSplit::default();
    for name in split.files() {
        let path = dir.path.join(name);
        let bytes = read_file(&path)?;
        raw.append_file_bytes(&path, &bytes)?;
    }
    Ok(raw)
}

/// Write records in the binary layout (for tests and fixtures). Labels are written as given,
/// so corrupt files can be produced on purpose.
pub fn write_batch_file(path: impl AsRef<Path>, raw: &RawSplit) -> Result<(), DataError> {
    let path = path.as_ref();
    let mut f = File::create(path).map_err(|e| DataError::io(path, e))?;
    f.write_all(&raw.to_bytes())
        .map_err(|e| DataError::io(path, e))
}
