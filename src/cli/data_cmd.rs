//! `eosbench data verify`: checksums, record counts, class histograms and first labels of the
//! CIFAR-10 directory ([`crate::data::verify`]), as the report's table or as JSON.

use serde_json::{json, Value};

use super::{CliError, Output};
use crate::data::{verify, DataDir, FileReport, SplitReport, VerifyReport};

/// Run `data verify` on `dir`. A missing directory is an error; a directory that differs from the
/// official release gives the report plus [`CliError::DataNotOfficial`] as the failure.
pub fn data_verify(dir: &DataDir) -> Result<Output, CliError> {
    let rep = verify(dir)?;
    let failure = (!rep.all_ok()).then(|| CliError::DataNotOfficial {
        dir: rep.dir.clone(),
    });
    Ok(Output {
        text: rep.to_string(),
        json: report_json(&rep),
        failure,
    })
}

fn file_json(f: &FileReport) -> Value {
    json!({
        "name": f.name,
        "split": f.split.to_string(),
        "bytes": f.bytes,
        "records": f.records,
        "sha256": f.sha256,
        "expected_sha256": f.expected_sha256,
        "sha_ok": f.sha_ok(),
        "status": f.status.to_string(),
        "ok": f.status == crate::data::FileStatus::Ok,
    })
}

fn split_json(s: &SplitReport) -> Value {
    json!({
        "records": s.records,
        "expected_records": s.expected_records,
        "class_counts": s.class_counts,
        "expected_per_class": s.expected_per_class(),
        "first_labels": s.first_labels,
        "expected_first_labels": s.expected_first_labels,
        "ok": s.is_ok(),
    })
}

/// The report as a JSON object: `dir`, `all_ok`, `files[]`, `train`, `test`.
pub fn report_json(rep: &VerifyReport) -> Value {
    json!({
        "dir": rep.dir.display().to_string(),
        "all_ok": rep.all_ok(),
        "files": rep.files.iter().map(file_json).collect::<Vec<_>>(),
        "train": split_json(&rep.train),
        "test": split_json(&rep.test),
    })
}
