//! Run metadata: where a result came from (build, machine, command, time).
//!
//! Build provenance is captured by `build.rs` at compile time; machine facts are read at run
//! time from `/proc` where available. Times are UTC, converted from [`SystemTime`] with the
//! proleptic-Gregorian civil-date algorithm below (no date library).

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Build provenance recorded by `build.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// Crate version from Cargo.toml.
    pub version: &'static str,
    /// `git rev-parse --short=12 HEAD`, plus `-dirty` when tracked files had uncommitted
    /// changes at build time; `unknown` when built outside a git checkout.
    pub git_revision: &'static str,
    /// `rustc --version` of the compiler that built this binary.
    pub rustc_version: &'static str,
    /// Target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub target: &'static str,
    /// Cargo profile base: `release` or `debug`.
    pub profile: &'static str,
}

/// The provenance of this binary.
pub fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        git_revision: env!("EOSBENCH_GIT_REV"),
        rustc_version: env!("EOSBENCH_RUSTC_VERSION"),
        target: env!("EOSBENCH_TARGET"),
        profile: env!("EOSBENCH_PROFILE"),
    }
}

/// Everything `run.json` records about how and where a run was produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    pub eosbench_version: String,
    pub git_revision: String,
    pub rustc_version: String,
    pub target: String,
    pub profile: String,
    /// `model name` from `/proc/cpuinfo`; `None` where unavailable (non-Linux, some ARM).
    pub cpu_model: Option<String>,
    /// Logical cores the OS reports as available to this process.
    pub logical_cores: usize,
    /// Worker threads this run used.
    pub threads: usize,
    /// The kernel implementation in use (reference / AVX2 / AVX-512 …), named by the caller.
    pub kernel_path: String,
    /// `argv`, lossily converted to UTF-8.
    pub command_line: Vec<String>,
    /// Start of the run, RFC 3339 UTC with seconds precision, e.g. `2024-02-29T12:34:56Z`.
    pub start_time_utc: String,
    pub hostname: String,
}

impl RunMeta {
    /// Captures the metadata of the current process, starting now.
    pub fn capture(threads: usize, kernel_path: impl Into<String>) -> RunMeta {
        let argv = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        RunMeta::capture_with(threads, kernel_path, argv, SystemTime::now())
    }

    /// As [`RunMeta::capture`] with an explicit command line and start time.
    pub fn capture_with(
        threads: usize,
        kernel_path: impl Into<String>,
        command_line: Vec<String>,
        start: SystemTime,
    ) -> RunMeta {
        let b = build_info();
        RunMeta {
            eosbench_version: b.version.to_string(),
            git_revision: b.git_revision.to_string(),
            rustc_version: b.rustc_version.to_string(),
            target: b.target.to_string(),
            profile: b.profile.to_string(),
            cpu_model: cpu_model(),
            logical_cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            threads,
            kernel_path: kernel_path.into(),
            command_line,
            start_time_utc: format_rfc3339_utc(start),
            hostname: hostname(),
        }
    }
}

/// The first `model name` line of `/proc/cpuinfo`.
fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    parse_cpu_model(&text)
}

fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name")
            .then(|| value.trim().to_string())
            .filter(|v| !v.is_empty())
    })
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .chain(
            ["HOSTNAME", "COMPUTERNAME"]
                .iter()
                .filter_map(|v| std::env::var(v).ok()),
        )
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// A UTC calendar date and time of day (proleptic Gregorian calendar, no leap seconds — the
/// Unix time scale).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcCivil {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Converts whole seconds since 1970-01-01T00:00:00Z (negative before) to a civil date.
///
/// Days → date uses the era decomposition of the Gregorian calendar: shift the epoch to
/// 0000-03-01 so the leap day ends each year, split into 400-year eras of 146 097 days,
/// find the year of the era from the day of the era (accounting for the 4/100/400 leap rules),
/// then the month from the day of the (March-based) year via the 153-days-per-5-months pattern.
pub fn utc_civil(unix_seconds: i64) -> UtcCivil {
    let days = unix_seconds.div_euclid(86_400);
    let secs_of_day = unix_seconds.rem_euclid(86_400) as u32;

    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], 0 = March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], 0 = March
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);

    UtcCivil {
        year,
        month,
        day,
        hour: secs_of_day / 3_600,
        minute: secs_of_day % 3_600 / 60,
        second: secs_of_day % 60,
    }
}

/// Whole seconds since the Unix epoch, rounded toward −∞ (so times before 1970 work).
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -s - i64::from(d.subsec_nanos() > 0)
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC, seconds precision).
pub fn format_rfc3339_utc(t: SystemTime) -> String {
    let c = utc_civil(unix_seconds(t));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `YYYYmmddTHHMMSSZ` (compact ISO 8601 basic format, UTC), the run-id time stamp.
pub fn format_run_id_utc(t: SystemTime) -> String {
    let c = utc_civil(unix_seconds(t));
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: i64) -> SystemTime {
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        }
    }

    #[test]
    fn known_instants() {
        // Reference values from `date -u -d … +%s`.
        let cases: [(i64, &str); 7] = [
            (0, "1970-01-01T00:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (951_868_800, "2000-03-01T00:00:00Z"),
            (951_868_800 - 86_400, "2000-02-29T00:00:00Z"),
            (1_709_210_096, "2024-02-29T12:34:56Z"),
            (-2_208_988_800, "1900-01-01T00:00:00Z"),
            (4_133_980_799, "2100-12-31T23:59:59Z"),
        ];
        for (s, want) in cases {
            assert_eq!(format_rfc3339_utc(at(s)), want, "unix {s}");
        }
        assert_eq!(format_run_id_utc(at(1_709_210_096)), "20240229T123456Z");
    }

    #[test]
    fn sub_second_before_epoch_rounds_down() {
        let t = UNIX_EPOCH - Duration::from_millis(1);
        assert_eq!(format_rfc3339_utc(t), "1969-12-31T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_millis(999);
        assert_eq!(format_rfc3339_utc(t), "1970-01-01T00:00:00Z");
    }

    /// Walks the calendar one day at a time with the plain leap-year rule and compares every
    /// day from 1700 to 2300 with the closed-form conversion.
    #[test]
    fn matches_day_by_day_calendar_walk() {
        fn is_leap(y: i64) -> bool {
            (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        }
        fn month_len(y: i64, m: u32) -> u32 {
            match m {
                1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
                4 | 6 | 9 | 11 => 30,
                _ if is_leap(y) => 29,
                _ => 28,
            }
        }
        // 1700-01-01 is this many days before the epoch.
        let mut days: i64 = -(1700..1970)
            .map(|y| if is_leap(y) { 366 } else { 365 })
            .sum::<i64>();
        let (mut y, mut m, mut d) = (1700i64, 1u32, 1u32);
        while y < 2300 {
            let c = utc_civil(days * 86_400 + 3_723);
            assert_eq!(
                (c.year, c.month, c.day, c.hour, c.minute, c.second),
                (y, m, d, 1, 2, 3),
                "day {days}"
            );
            days += 1;
            d += 1;
            if d > month_len(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn parses_cpu_model() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\n\
                    model name\t: Intel(R) Xeon(R) CPU @ 2.00GHz\nmodel name\t: other\n";
        assert_eq!(
            parse_cpu_model(text).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.00GHz")
        );
        assert_eq!(parse_cpu_model("processor : 0\nCPU part : 0xd0c\n"), None);
        assert_eq!(parse_cpu_model("model name :   \n"), None);
    }

    #[test]
    fn run_meta_fields_and_json() {
        let m = RunMeta::capture_with(
            3,
            "avx2",
            vec!["eosbench".into(), "train".into()],
            at(1_709_210_096),
        );
        assert_eq!(m.eosbench_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(m.start_time_utc, "2024-02-29T12:34:56Z");
        assert_eq!(m.threads, 3);
        assert_eq!(m.kernel_path, "avx2");
        assert!(m.logical_cores >= 1);
        assert!(!m.hostname.is_empty());
        assert!(!m.git_revision.is_empty());
        assert!(m.rustc_version == "unknown" || m.rustc_version.starts_with("rustc "));
        assert!(m.profile == "release" || m.profile == "debug");
        assert!(!m.target.is_empty() && m.target != "unknown");
        if std::path::Path::new("/proc/cpuinfo").exists() && cfg!(target_arch = "x86_64") {
            assert!(m.cpu_model.is_some());
        }
        let json = serde_json::to_string(&m).unwrap();
        let back: RunMeta = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for key in [
            "eosbench_version",
            "git_revision",
            "rustc_version",
            "target",
            "profile",
            "cpu_model",
            "logical_cores",
            "threads",
            "kernel_path",
            "command_line",
            "start_time_utc",
            "hostname",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn git_revision_shape() {
        let rev = build_info().git_revision;
        if rev != "unknown" {
            let hash = rev.strip_suffix("-dirty").unwrap_or(rev);
            assert_eq!(hash.len(), 12, "{rev}");
            assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{rev}");
        }
    }
}
