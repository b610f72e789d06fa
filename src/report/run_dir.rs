//! Run directories `results/<experiment>/<run-id>/`, JSON files in them, and streaming CSV.

use super::atomic_write;
use super::meta::format_run_id_utc;
use serde::Serialize;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Rejects names that would escape or alias the results tree: empty, `.`, `..`, or containing a
/// path separator or NUL. Each experiment, run id and file name is exactly one path component.
fn check_component(what: &str, name: &str) -> io::Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || Path::new(name).components().count() != 1;
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "invalid {what} '{name}': use a single non-empty name without '/', '\\', '.' or '..'"
            ),
        ));
    }
    Ok(())
}

/// Six hex digits from a randomly keyed hasher (std seeds `RandomState` from the OS), mixed with
/// the process id and the clock, so two runs started in the same second get different ids.
fn random_suffix(attempt: u32) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u32(attempt);
    if let Ok(d) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    format!("{:06x}", h.finish() & 0xff_ffff)
}

/// One run's output directory, `<results_root>/<experiment>/<run-id>/`, created fresh: an
/// existing run directory is never reused, so results are never silently overwritten.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
    experiment: String,
    run_id: String,
}

impl RunDir {
    /// Creates `<results_root>/<experiment>/<run-id>/` (and missing parents).
    ///
    /// `run_id = None` picks `YYYYmmddTHHMMSSZ-xxxxxx` (UTC start time and six random hex
    /// digits), retrying with a new suffix on the unlikely collision. An explicit `run_id`
    /// that already exists is an `AlreadyExists` error naming the directory.
    pub fn create(
        results_root: impl AsRef<Path>,
        experiment: &str,
        run_id: Option<String>,
    ) -> io::Result<RunDir> {
        check_component("experiment name", experiment)?;
        let parent = results_root.as_ref().join(experiment);
        fs::create_dir_all(&parent).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create results directory '{}': {e} (check the --results path is writable)",
                    parent.display()
                ),
            )
        })?;

        let explicit = run_id.is_some();
        if let Some(id) = &run_id {
            check_component("run id", id)?;
        }
        let stamp = format_run_id_utc(SystemTime::now());
        const ATTEMPTS: u32 = 16;
        for attempt in 0..ATTEMPTS {
            let id = match &run_id {
                Some(id) => id.clone(),
                None => format!("{stamp}-{}", random_suffix(attempt)),
            };
            let path = parent.join(&id);
            match fs::create_dir(&path) {
                Ok(()) => {
                    return Ok(RunDir {
                        path,
                        experiment: experiment.to_string(),
                        run_id: id,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !explicit => continue,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "run directory '{}' already exists: choose another run id or move the old results away",
                            path.display()
                        ),
                    ))
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot create run directory '{}': {e}", path.display()),
                    ))
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "could not find a free run id under '{}' after {ATTEMPTS} attempts",
                parent.display()
            ),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn experiment(&self) -> &str {
        &self.experiment
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The path of file `name` inside the run directory (`name` must be a single component).
    pub fn file(&self, name: &str) -> io::Result<PathBuf> {
        check_component("file name", name)?;
        Ok(self.path.join(name))
    }

    /// Writes `value` as pretty JSON (with a trailing newline) to `name`, atomically; an
    /// existing file of that name is replaced as a whole. Returns the file's path.
    pub fn write_json<S: Serialize + ?Sized>(&self, name: &str, value: &S) -> io::Result<PathBuf> {
        let path = self.file(name)?;
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot serialize '{}' to JSON: {e}", path.display()),
            )
        })?;
        bytes.push(b'\n');
        atomic_write(&path, &bytes)?;
        Ok(path)
    }

    /// Starts the streaming CSV file `name` with the given header (see [`CsvWriter::create`]).
    pub fn csv(&self, name: &str, columns: &[&str]) -> io::Result<CsvWriter> {
        CsvWriter::create(&self.file(name)?, columns)
    }
}

/// One CSV cell. Build rows with `.into()`: integers, floats, `bool`, `&str` and `Option` of
/// those (`None` is an empty cell).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CsvField<'a> {
    Int(i64),
    UInt(u64),
    F64(f64),
    /// Written with f32's own shortest round-trip digits (not widened to f64 first).
    F32(f32),
    Bool(bool),
    Str(&'a str),
    Empty,
}

macro_rules! csv_from {
    ($($t:ty => $v:ident as $c:ty),* $(,)?) => {
        $(impl From<$t> for CsvField<'_> {
            fn from(x: $t) -> Self {
                CsvField::$v(x as $c)
            }
        })*
    };
}
csv_from!(
    i64 => Int as i64, i32 => Int as i64,
    u64 => UInt as u64, u32 => UInt as u64, usize => UInt as u64,
    f64 => F64 as f64, f32 => F32 as f32,
);

impl From<bool> for CsvField<'_> {
    fn from(x: bool) -> Self {
        CsvField::Bool(x)
    }
}
impl<'a> From<&'a str> for CsvField<'a> {
    fn from(x: &'a str) -> Self {
        CsvField::Str(x)
    }
}
impl<'a> From<&'a String> for CsvField<'a> {
    fn from(x: &'a String) -> Self {
        CsvField::Str(x)
    }
}
impl<'a, T: Into<CsvField<'a>>> From<Option<T>> for CsvField<'a> {
    fn from(x: Option<T>) -> Self {
        x.map_or(CsvField::Empty, Into::into)
    }
}

/// Floats print with the shortest digits that round-trip exactly; plain decimal for
/// magnitudes in [1e-5, 1e16), scientific (`1.5e-7`) outside, `NaN`, `inf`, `-inf`.
fn push_float<F: std::fmt::Display + std::fmt::LowerExp>(out: &mut String, x: F, abs: f64) {
    let _ = if abs == 0.0 || !abs.is_finite() || (1e-5..1e16).contains(&abs) {
        write!(out, "{x}")
    } else {
        write!(out, "{x:e}")
    };
}

/// RFC 4180 quoting: cells holding a comma, quote or line break are wrapped in quotes with
/// inner quotes doubled.
fn push_str(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// An append-only CSV table written row by row, for logs that grow during a run (`steps.csv`,
/// `eigs.csv`).
///
/// Unlike whole files, these are written to their final name directly: rewriting the file
/// atomically after every step would cost O(rows²) I/O. It is still crash-safe because the file
/// is only ever appended to (opened with `O_APPEND`, never truncated) and each row is formatted
/// in memory and handed to the OS as one `write` of a complete line ending in `\n`, with no user
/// space buffer in between. If the process dies, every row written so far is intact in the OS
/// and the file is a valid CSV: the header plus complete rows. Only a power loss can drop the
/// tail (call [`CsvWriter::sync`] at checkpoints to bound that); a reader should ignore a final
/// line without `\n`.
#[derive(Debug)]
pub struct CsvWriter {
    file: File,
    path: PathBuf,
    columns: usize,
    rows: u64,
    /// Reused line buffer: no allocation per row once it has grown.
    line: String,
}

impl CsvWriter {
    /// Creates `path` (which must not exist yet: results are never overwritten) and writes the
    /// header line. Column names should carry units (`t_step_ms`, `lr`, `sharpness`); they must
    /// be non-empty, unique, and free of commas, quotes and line breaks.
    pub fn create(path: &Path, columns: &[&str]) -> io::Result<CsvWriter> {
        let invalid = |msg: String| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad CSV header for '{}': {msg}", path.display()),
            )
        };
        if columns.is_empty() {
            return Err(invalid("no columns".into()));
        }
        for (i, c) in columns.iter().enumerate() {
            if c.is_empty() || c.contains([',', '"', '\n', '\r']) {
                return Err(invalid(format!(
                    "column {i} '{c}' must be non-empty without commas, quotes or line breaks"
                )));
            }
            if columns[..i].contains(c) {
                return Err(invalid(format!("column '{c}' appears twice")));
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)
            .map_err(|e| {
                let fix = if e.kind() == io::ErrorKind::AlreadyExists {
                    " (results are never overwritten: use a fresh run directory)"
                } else {
                    ""
                };
                io::Error::new(
                    e.kind(),
                    format!("cannot create '{}': {e}{fix}", path.display()),
                )
            })?;
        let mut w = CsvWriter {
            file,
            path: path.to_path_buf(),
            columns: columns.len(),
            rows: 0,
            line: String::with_capacity(256),
        };
        w.line.push_str(&columns.join(","));
        w.line.push('\n');
        w.emit()?;
        Ok(w)
    }

    fn emit(&mut self) -> io::Result<()> {
        self.file.write_all(self.line.as_bytes()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot append to '{}': {e}", self.path.display()),
            )
        })
    }

    /// Appends one row; it is in the OS when this returns. A row with the wrong number of
    /// fields is an `InvalidInput` error and writes nothing.
    pub fn write_row(&mut self, fields: &[CsvField<'_>]) -> io::Result<()> {
        if fields.len() != self.columns {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "row for '{}' has {} fields, the header has {}",
                    self.path.display(),
                    fields.len(),
                    self.columns
                ),
            ));
        }
        self.line.clear();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            match *f {
                CsvField::Int(x) => {
                    let _ = write!(self.line, "{x}");
                }
                CsvField::UInt(x) => {
                    let _ = write!(self.line, "{x}");
                }
                CsvField::F64(x) => push_float(&mut self.line, x, x.abs()),
                CsvField::F32(x) => push_float(&mut self.line, x, f64::from(x.abs())),
                CsvField::Bool(x) => self.line.push_str(if x { "true" } else { "false" }),
                CsvField::Str(s) => push_str(&mut self.line, s),
                CsvField::Empty => {}
            }
        }
        self.line.push('\n');
        self.emit()?;
        self.rows += 1;
        Ok(())
    }

    /// Forces written rows to stable storage (fsync).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn num_columns(&self) -> usize {
        self.columns
    }

    /// Data rows written so far (the header not counted).
    pub fn rows_written(&self) -> u64 {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::TempDir;
    use super::*;

    #[test]
    fn explicit_run_id_layout_and_no_reuse() {
        let t = TempDir::new("rundir");
        let rd = RunDir::create(t.path(), "fig1", Some("r1".into())).unwrap();
        assert_eq!(rd.path(), t.path().join("fig1").join("r1"));
        assert!(rd.path().is_dir());
        assert_eq!((rd.experiment(), rd.run_id()), ("fig1", "r1"));
        let err = RunDir::create(t.path(), "fig1", Some("r1".into())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("r1"), "{err}");
    }

    #[test]
    fn default_run_ids_are_timestamped_and_distinct() {
        let t = TempDir::new("rundir-default");
        let ids: Vec<String> = (0..5)
            .map(|_| {
                RunDir::create(t.path(), "exp", None)
                    .unwrap()
                    .run_id()
                    .to_string()
            })
            .collect();
        for id in &ids {
            // YYYYmmddTHHMMSSZ-xxxxxx
            let b = id.as_bytes();
            assert_eq!(b.len(), 23, "{id}");
            assert!(b[..8].iter().all(u8::is_ascii_digit), "{id}");
            assert_eq!((b[8], b[15], b[16]), (b'T', b'Z', b'-'), "{id}");
            assert!(b[9..15].iter().all(u8::is_ascii_digit), "{id}");
            assert!(b[17..].iter().all(u8::is_ascii_hexdigit), "{id}");
            assert!(t.path().join("exp").join(id).is_dir());
        }
        let mut uniq = ids.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), ids.len());
    }

    #[test]
    fn rejects_bad_names() {
        let t = TempDir::new("rundir-bad");
        for bad in ["", ".", "..", "a/b", "a\\b"] {
            let e = RunDir::create(t.path(), bad, None).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            let e = RunDir::create(t.path(), "ok", Some(bad.to_string())).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        let rd = RunDir::create(t.path(), "ok", Some("r".into())).unwrap();
        assert!(rd.write_json("../escape.json", &1).is_err());
        assert!(!t.path().join("ok").join("escape.json").exists());
    }

    #[test]
    fn write_json_pretty_atomic_roundtrip() {
        #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Cfg {
            lr: f64,
            steps: u64,
            name: String,
        }
        let t = TempDir::new("rundir-json");
        let rd = RunDir::create(t.path(), "e", Some("r".into())).unwrap();
        let c = Cfg {
            lr: 2.0 / 3.0,
            steps: 7,
            name: "fc-tanh".into(),
        };
        let p = rd.write_json("run.json", &c).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.ends_with("}\n"));
        assert!(text.contains("\n  \"lr\": "), "not pretty: {text}");
        let back: Cfg = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
        rd.write_json("run.json", &[1, 2, 3]).unwrap();
        let back: Vec<i32> = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(back, vec![1, 2, 3]);
        let names: Vec<_> = fs::read_dir(rd.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary files left behind");
    }

    #[test]
    fn csv_rows_are_on_disk_immediately() {
        let t = TempDir::new("csv");
        let rd = RunDir::create(t.path(), "e", Some("r".into())).unwrap();
        let mut w = rd.csv("steps.csv", &["step", "loss", "t_step_ms"]).unwrap();
        let p = w.path().to_path_buf();
        assert_eq!(fs::read_to_string(&p).unwrap(), "step,loss,t_step_ms\n");
        w.write_row(&[0u64.into(), 0.5f64.into(), 1.25f64.into()])
            .unwrap();
        // Read while the writer is still open: the row must already be there.
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "step,loss,t_step_ms\n0,0.5,1.25\n"
        );
        w.write_row(&[1usize.into(), f64::NAN.into(), None::<f64>.into()])
            .unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "step,loss,t_step_ms\n0,0.5,1.25\n1,NaN,\n"
        );
        assert_eq!(w.rows_written(), 2);
        w.sync().unwrap();
    }

    #[test]
    fn csv_floats_roundtrip_exactly() {
        let t = TempDir::new("csv-float");
        let p = t.path().join("f.csv");
        let mut w = CsvWriter::create(&p, &["x64", "x32"]).unwrap();
        let xs = [
            0.0,
            -0.0,
            1.0 / 3.0,
            1e-300,
            -2.5e-7,
            123456.789,
            6.02e23,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for &x in &xs {
            w.write_row(&[x.into(), (x as f32).into()]).unwrap();
        }
        drop(w);
        let text = fs::read_to_string(&p).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len(), xs.len());
        for (line, &x) in rows.iter().zip(&xs) {
            let (a, b) = line.split_once(',').unwrap();
            assert!(a.len() <= 25, "too long: {a}");
            assert_eq!(a.parse::<f64>().unwrap().to_bits(), x.to_bits(), "{a}");
            assert_eq!(
                b.parse::<f32>().unwrap().to_bits(),
                (x as f32).to_bits(),
                "{b}"
            );
        }
        // f32 is printed with its own digits, not widened.
        assert_eq!(rows[2].split_once(',').unwrap().1, "0.33333334");
    }

    #[test]
    fn csv_quotes_strings_and_counts_fields() {
        let t = TempDir::new("csv-str");
        let p = t.path().join("s.csv");
        let mut w = CsvWriter::create(&p, &["status", "ok", "n"]).unwrap();
        let s = String::from("plain");
        w.write_row(&[(&s).into(), true.into(), (-3i32).into()])
            .unwrap();
        w.write_row(&["a,b \"c\"\nd".into(), false.into(), 0i64.into()])
            .unwrap();
        let e = w.write_row(&[1u32.into()]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(w.rows_written(), 2);
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "status,ok,n\nplain,true,-3\n\"a,b \"\"c\"\"\nd\",false,0\n"
        );
    }

    #[test]
    fn csv_never_overwrites_and_validates_header() {
        let t = TempDir::new("csv-exists");
        let p = t.path().join("x.csv");
        fs::write(&p, "old\n").unwrap();
        let e = CsvWriter::create(&p, &["a"]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("x.csv"), "{e}");
        assert_eq!(fs::read_to_string(&p).unwrap(), "old\n");
        let q = t.path().join("y.csv");
        for cols in [&[][..], &["a", "a"], &["a,b"], &[""], &["q\""]] {
            let e = CsvWriter::create(&q, cols).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{cols:?}");
        }
        assert!(!q.exists());
    }
}
