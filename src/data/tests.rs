//! Unit tests of the data module on generated files (no real CIFAR-10 needed).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::dir::{is_ci, real_data_with, resolve_with};
use super::*;

fn scratch(tag: &str) -> ScratchDir {
    ScratchDir::new(tag).expect("create scratch dir under temp_dir")
}

fn fake_dir(tag: &str, per_file: usize, seed: u64) -> (ScratchDir, RawSplit, RawSplit) {
    let d = scratch(tag);
    let (train, test) = write_fake_cifar_dir(&d.path, per_file, seed).expect("write fake dir");
    (d, train, test)
}

// ---------------------------------------------------------------- reading

#[test]
fn batch_file_round_trips() {
    let d = scratch("roundtrip");
    let raw = synthetic_raw(25, 1);
    assert_eq!(raw.len(), 25);
    assert_eq!(raw.images.len(), 25 * IMAGE_BYTES);
    let p = d.path.join("b.bin");
    write_batch_file(&p, &raw).unwrap();
    assert_eq!(
        std::fs::metadata(&p).unwrap().len(),
        25 * RECORD_BYTES as u64
    );
    let back = read_batch_file(&p).unwrap();
    assert_eq!(back, raw);
    // Record layout: byte 0 label, then the image bytes unchanged.
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(bytes[RECORD_BYTES], raw.labels[1]);
    assert_eq!(&bytes[RECORD_BYTES + 1..2 * RECORD_BYTES], raw.image(1));
}

#[test]
fn missing_file_is_a_typed_error() {
    let d = scratch("missing-file");
    let p = d.path.join("nope.bin");
    let err = read_batch_file(&p).unwrap_err();
    match &err {
        DataError::FileMissing { path } => assert_eq!(path, &p),
        e => panic!("expected FileMissing, got {e:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("nope.bin") && msg.contains("fetch-cifar10.sh"),
        "{msg}"
    );
}

#[test]
fn size_not_multiple_of_record_is_rejected_with_name_and_size() {
    let d = scratch("badsize");
    let p = d.path.join("trunc.bin");
    let mut bytes = synthetic_raw(2, 3).to_bytes();
    bytes.extend_from_slice(&[1, 2, 3, 4, 5]);
    std::fs::write(&p, &bytes).unwrap();
    let err = read_batch_file(&p).unwrap_err();
    match &err {
        DataError::BadSize {
            path,
            bytes,
            whole,
            rest,
        } => {
            assert_eq!(path, &p);
            assert_eq!(*bytes, 2 * 3073 + 5);
            assert_eq!((*whole, *rest), (2, 5));
        }
        e => panic!("expected BadSize, got {e:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("trunc.bin") && msg.contains("6151"), "{msg}");

    // An empty file holds no records: also a size error.
    let e = d.path.join("empty.bin");
    std::fs::write(&e, b"").unwrap();
    assert!(matches!(
        read_batch_file(&e),
        Err(DataError::BadSize { bytes: 0, .. })
    ));
}

#[test]
fn label_out_of_range_names_file_record_and_value() {
    let d = scratch("badlabel");
    let p = d.path.join("labels.bin");
    let mut raw = synthetic_raw(6, 4);
    raw.labels[3] = 10;
    raw.labels[5] = 255;
    write_batch_file(&p, &raw).unwrap();
    let err = read_batch_file(&p).unwrap_err();
    match &err {
        DataError::BadLabel {
            path,
            record,
            label,
        } => {
            assert_eq!(path, &p);
            assert_eq!((*record, *label), (3, 10));
        }
        e => panic!("expected BadLabel, got {e:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("labels.bin") && msg.contains("record 3") && msg.contains("label 10"),
        "{msg}"
    );
}

#[test]
fn load_raw_concatenates_train_files_in_order() {
    let (d, train, test) = fake_dir("order", 7, 10);
    let got = load_raw(&d.path, Split::Train).unwrap();
    assert_eq!(got.len(), 35);
    assert_eq!(got, train);
    // Record 7 is the first record of data_batch_2.
    let b2 = read_batch_file(d.path.join("data_batch_2.bin")).unwrap();
    assert_eq!(got.image(7), b2.image(0));
    assert_eq!(got.labels[7], b2.labels[0]);
    assert_eq!(load_raw(&d.path, Split::Test).unwrap(), test);
}

#[test]
fn load_raw_reports_missing_file_in_existing_dir() {
    let (d, _, _) = fake_dir("missing-one", 3, 11);
    std::fs::remove_file(d.path.join("data_batch_3.bin")).unwrap();
    let err = load_raw(&d.path, Split::Train).unwrap_err();
    match &err {
        DataError::FileMissing { path } => assert!(path.ends_with("data_batch_3.bin")),
        e => panic!("expected FileMissing, got {e:?}"),
    }
    // The test split does not need that file.
    assert_eq!(load_raw(&d.path, Split::Test).unwrap().len(), 3);
    // But load_cifar10 of the test split needs the training statistics.
    assert!(matches!(
        load_cifar10(&d.path, Split::Test, Subset::All),
        Err(DataError::FileMissing { .. })
    ));
}

#[test]
fn missing_dir_says_where_which_source_and_how_to_fix() {
    let gone = std::env::temp_dir().join(format!("eosbench-no-such-dir-{}", std::process::id()));
    for (source, needle) in [
        (DataSource::Flag, "--data-dir flag"),
        (DataSource::Env, "EOSBENCH_DATA environment variable"),
        (DataSource::Default, "default datasets/cifar-10-batches-bin"),
        (DataSource::Given, "passed by the caller"),
    ] {
        let dir = DataDir {
            path: gone.clone(),
            source,
        };
        for err in [
            load_raw(&dir, Split::Train).unwrap_err(),
            load_cifar10(&dir, Split::Train, Subset::First(5)).unwrap_err(),
            verify(&dir).unwrap_err(),
        ] {
            match &err {
                DataError::DirNotFound { path, origin } => {
                    assert_eq!(path, &gone);
                    assert_eq!(*origin, source);
                }
                e => panic!("expected DirNotFound, got {e:?}"),
            }
            let msg = err.to_string();
            for s in [
                gone.to_str().unwrap(),
                needle,
                "--data-dir",
                "EOSBENCH_DATA",
                "scripts/fetch-cifar10.sh",
            ] {
                assert!(msg.contains(s), "missing '{s}' in: {msg}");
            }
        }
    }
    // A regular file is not a data directory either.
    let d = scratch("file-not-dir");
    let f = d.path.join("plain");
    std::fs::write(&f, b"x").unwrap();
    assert!(matches!(
        load_raw(&f, Split::Test),
        Err(DataError::DirNotFound { .. })
    ));
}

// ---------------------------------------------------------------- preprocessing + load

/// Reference standardization of one value, straight from the definition.
fn reference_value(train: &RawSplit, j: usize, byte: u8) -> f64 {
    let n = train.len() as f64;
    let xs: Vec<f64> = (0..train.len())
        .map(|i| train.image(i)[j] as f64 / 255.0)
        .collect();
    let m = xs.iter().sum::<f64>() / n;
    let s = (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt();
    (byte as f64 / 255.0 - m) / s
}

#[test]
fn load_cifar10_standardizes_with_full_train_statistics() {
    let (d, train, test) = fake_dir("load", 40, 20);
    let all = load_cifar10(&d.path, Split::Train, Subset::All).unwrap();
    assert_eq!((all.n, all.d, all.classes), (200, IMAGE_BYTES, CLASSES));
    assert_eq!(all.x.len(), 200 * IMAGE_BYTES);
    assert_eq!(all.labels, train.labels);
    assert_eq!(all.name, "cifar10-train");
    let (mean, std) = all.feature_mean_std();
    let max_mean = mean.iter().fold(0.0f64, |a, m| a.max(m.abs()));
    let max_dev = std.iter().fold(0.0f64, |a, s| a.max((s - 1.0).abs()));
    assert!(max_mean < 1e-6, "full-train mean {max_mean}");
    assert!(max_dev < 1e-5, "full-train std dev {max_dev}");

    // The subset is cut after standardizing: rows equal the full split's first rows, and its
    // own statistics are not standardized.
    let first = load_cifar10(&d.path, Split::Train, Subset::First(30)).unwrap();
    assert_eq!(first.name, "cifar10-30");
    assert_eq!(first.n, 30);
    assert_eq!(first.x[..], all.x[..30 * IMAGE_BYTES]);
    let (m30, _) = first.feature_mean_std();
    assert!(m30.iter().any(|m| m.abs() > 0.05));

    // Spot values against the definition, for train and test (test uses train statistics).
    for &(i, j) in &[(0usize, 0usize), (17, 1023), (29, 1024), (3, 3071)] {
        let want = reference_value(&train, j, train.image(i)[j]);
        assert!((first.row(i)[j] as f64 - want).abs() < 1e-6 * want.abs().max(1.0));
    }
    let te = load_cifar10(&d.path, Split::Test, Subset::All).unwrap();
    assert_eq!(te.name, "cifar10-test");
    assert_eq!(te.labels, test.labels);
    for &(i, j) in &[(0usize, 5usize), (39, 2000)] {
        let want = reference_value(&train, j, test.image(i)[j]);
        assert!((te.row(i)[j] as f64 - want).abs() < 1e-6 * want.abs().max(1.0));
    }

    // One-pass train/test loader gives identical datasets.
    let (tr2, te2) = load_train_test(&d.path, Subset::First(30)).unwrap();
    assert_eq!(tr2, first);
    assert_eq!(te2, te);
    // And the name-based loader.
    let by_name: DatasetName = "cifar10-30".parse().unwrap();
    assert_eq!(by_name.load(&d.path).unwrap(), first);
}

#[test]
fn subset_size_errors() {
    let (d, _, _) = fake_dir("subset-err", 4, 30);
    let load = |split, s| load_cifar10(&d.path, split, s);
    assert!(matches!(
        load(Split::Train, Subset::First(0)),
        Err(DataError::EmptySubset {
            split: Split::Train
        })
    ));
    match load(Split::Train, Subset::First(21)) {
        Err(DataError::SubsetTooLarge {
            split: Split::Train,
            requested: 21,
            available: 20,
        }) => {}
        r => panic!("expected SubsetTooLarge, got {r:?}"),
    }
    assert!(matches!(
        load(Split::Test, Subset::First(5)),
        Err(DataError::SubsetTooLarge {
            split: Split::Test,
            requested: 5,
            available: 4
        })
    ));
    assert!(matches!(
        load(Split::Train, Subset::Balanced(0)),
        Err(DataError::EmptySubset { .. })
    ));
    assert!(load(Split::Train, Subset::First(20)).is_ok());
}

#[test]
fn balanced_subset_takes_first_of_each_class_in_record_order() {
    // Hand-made labels: class c appears at known positions.
    let labels: Vec<u8> = (0..100u32).map(|i| ((i * 7 + i / 13) % 10) as u8).collect();
    let idx = Subset::Balanced(30)
        .indices(Split::Train, &labels, 10)
        .unwrap();
    assert_eq!(idx.len(), 30);
    assert!(idx.windows(2).all(|w| w[0] < w[1]), "record order");
    for c in 0..10u8 {
        let want: Vec<usize> = (0..100).filter(|&i| labels[i] == c).take(3).collect();
        let got: Vec<usize> = idx.iter().copied().filter(|&i| labels[i] == c).collect();
        assert_eq!(got, want, "class {c}");
    }
    // Not divisible: rejected with the nearest valid sizes.
    match Subset::Balanced(25).indices(Split::Train, &labels, 10) {
        Err(DataError::BalancedNotDivisible {
            n: 25,
            classes: 10,
            lower: 20,
            upper: 30,
        }) => {}
        r => panic!("expected BalancedNotDivisible, got {r:?}"),
    }
    // A class with too few records.
    let mut skew = vec![0u8; 50];
    skew[..10].copy_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    match Subset::Balanced(20).indices(Split::Test, &skew, 10) {
        Err(DataError::ClassTooSmall {
            split: Split::Test,
            class: 1,
            needed: 2,
            available: 1,
        }) => {}
        r => panic!("expected ClassTooSmall, got {r:?}"),
    }
    // Through the loader, with counts from the real labels of the fake files.
    let (d, train, _) = fake_dir("balanced", 100, 31);
    let ds = load_cifar10(&d.path, Split::Train, Subset::Balanced(100)).unwrap();
    assert_eq!(ds.name, "cifar10-balanced-100");
    assert_eq!(ds.class_counts(), vec![10; 10]);
    let all = load_cifar10(&d.path, Split::Train, Subset::All).unwrap();
    let want = Subset::Balanced(100)
        .indices(Split::Train, &train.labels, 10)
        .unwrap();
    assert_eq!(ds, all.subset(&want).unwrap().renamed(&ds.name));
}

impl Dataset {
    fn renamed(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }
}

// ---------------------------------------------------------------- names

#[test]
fn dataset_names_parse_and_print() {
    use Split::*;
    use Subset::*;
    let cases = [
        ("cifar10-5k", Train, First(5000), "cifar10-5k"),
        ("CIFAR10-5K", Train, First(5000), "cifar10-5k"),
        ("cifar10-5000", Train, First(5000), "cifar10-5k"),
        ("cifar10-50k", Train, First(50_000), "cifar10-50k"),
        ("cifar10-1000", Train, First(1000), "cifar10-1k"),
        ("cifar10-1234", Train, First(1234), "cifar10-1234"),
        (
            "cifar10-balanced-5k",
            Train,
            Balanced(5000),
            "cifar10-balanced-5k",
        ),
        ("cifar10-test", Test, All, "cifar10-test"),
        ("cifar10-test-1k", Test, First(1000), "cifar10-test-1k"),
        (
            "cifar10-test-balanced-500",
            Test,
            Balanced(500),
            "cifar10-test-balanced-500",
        ),
        ("cifar10-train", Train, All, "cifar10-train"),
        ("cifar10", Train, All, "cifar10-train"),
    ];
    for (s, split, subset, canon) in cases {
        let n: DatasetName = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(n, DatasetName { split, subset }, "{s}");
        assert_eq!(n.to_string(), canon);
        assert_eq!(
            canon.parse::<DatasetName>().unwrap(),
            n,
            "round trip {canon}"
        );
    }
    assert_eq!(DatasetName::FIGURE1.to_string(), "cifar10-5k");
    for bad in [
        "mnist-5k",
        "cifar10-",
        "cifar10-0",
        "cifar10-5kk",
        "cifar10-k",
        "cifar10--5",
        "cifar10-balanced-",
        "cifar10-test-",
        "cifar10x",
        "cifar10-99999999999999999999999",
        "cifar100-5k",
    ] {
        match bad.parse::<DatasetName>() {
            Err(e @ DataError::BadName { .. }) => {
                assert!(e.to_string().contains("cifar10-5k"), "{e}")
            }
            r => panic!("{bad}: expected BadName, got {r:?}"),
        }
    }
}

// ---------------------------------------------------------------- Dataset helpers

#[test]
fn dataset_helpers() {
    let ds = synthetic(13, 4, 3, 5);
    assert_eq!(ds.class_counts(), vec![5, 4, 4]);
    let f64s = ds.features_f64();
    assert_eq!(f64s.len(), 52);
    assert!(f64s.iter().zip(&ds.x).all(|(a, &b)| *a == b as f64));
    assert_eq!(ds.features::<f32>(), ds.x);
    let y = ds.one_hot::<f64>();
    assert_eq!(y.len(), 13 * 3);
    for i in 0..13 {
        let row = &y[i * 3..i * 3 + 3];
        assert_eq!(row.iter().sum::<f64>(), 1.0);
        assert_eq!(row[ds.labels[i] as usize], 1.0);
    }
    let sub = ds.subset(&[12, 0, 12]).unwrap();
    assert_eq!((sub.n, sub.d, sub.classes), (3, 4, 3));
    assert_eq!(sub.row(0), ds.row(12));
    assert_eq!(sub.row(1), ds.row(0));
    assert_eq!(sub.labels, vec![ds.labels[12], ds.labels[0], ds.labels[12]]);
    match ds.subset(&[1, 13]) {
        Err(DataError::IndexOutOfRange {
            index: 13, n: 13, ..
        }) => {}
        r => panic!("expected IndexOutOfRange, got {r:?}"),
    }
    let empty = ds.subset(&[]).unwrap();
    assert_eq!(empty.n, 0);
    assert_eq!(empty.feature_mean_std().0, vec![0.0; 4]);
}

// ---------------------------------------------------------------- synthetic

#[test]
fn synthetic_is_seeded_standardized_and_learnable() {
    let a = synthetic(2000, 32, 10, 7);
    let b = synthetic(2000, 32, 10, 7);
    let c = synthetic(2000, 32, 10, 8);
    assert_eq!(a, b);
    assert_ne!(a.x, c.x);
    assert_eq!((a.n, a.d, a.classes, a.x.len()), (2000, 32, 10, 64_000));
    assert_eq!(a.class_counts(), vec![200; 10]);
    assert!(a.x.iter().all(|v| v.is_finite()));
    // Roughly standardized: per-feature mean within ~5 standard errors of 0 (plus the
    // class-mean imbalance, at most 0.5 · |Σ signs| / 10), std within 10 % of 1.
    let (mean, std) = a.feature_mean_std();
    for j in 0..a.d {
        assert!(mean[j].abs() < 0.5, "mean[{j}] = {}", mean[j]);
        assert!((std[j] - 1.0).abs() < 0.1, "std[{j}] = {}", std[j]);
    }
    // Class structure: a nearest-class-mean classifier fitted on half the data classifies the
    // other half well (chance is 10 %).
    let d = a.d;
    let mut centroid = vec![0.0f64; 10 * d];
    let mut cnt = [0usize; 10];
    for i in 0..1000 {
        let c = a.labels[i] as usize;
        cnt[c] += 1;
        for j in 0..d {
            centroid[c * d + j] += a.row(i)[j] as f64;
        }
    }
    for c in 0..10 {
        for j in 0..d {
            centroid[c * d + j] /= cnt[c] as f64;
        }
    }
    let correct = (1000..2000)
        .filter(|&i| {
            let x = a.row(i);
            let best = (0..10)
                .min_by(|&p, &q| {
                    let dist = |c: usize| -> f64 {
                        (0..d)
                            .map(|j| (x[j] as f64 - centroid[c * d + j]).powi(2))
                            .sum()
                    };
                    dist(p).total_cmp(&dist(q))
                })
                .unwrap();
            best == a.labels[i] as usize
        })
        .count();
    assert!(correct > 900, "nearest-mean accuracy {correct}/1000");
}

#[test]
fn synthetic_edge_shapes() {
    let e = synthetic(0, 5, 2, 1);
    assert_eq!((e.n, e.x.len(), e.labels.len()), (0, 0, 0));
    let z = synthetic(3, 0, 2, 1);
    assert_eq!((z.n, z.d, z.x.len()), (3, 0, 0));
    let one = synthetic(4, 3, 1, 1);
    assert_eq!(one.labels, vec![0; 4]);
}

#[test]
fn synthetic_raw_is_deterministic_and_in_range() {
    let r = synthetic_raw(300, 9);
    assert_eq!(r, synthetic_raw(300, 9));
    assert_ne!(r, synthetic_raw(300, 10));
    assert!(r.labels.iter().all(|&l| (l as usize) < CLASSES));
    assert_eq!(r.class_counts().iter().sum::<usize>(), 300);
    assert!(
        r.class_counts().iter().all(|&c| c > 10),
        "{:?}",
        r.class_counts()
    );
}

// ---------------------------------------------------------------- verify

#[test]
fn verify_reports_mismatches_without_failing() {
    let (d, train, test) = fake_dir("verify", 20, 40);
    let rep = verify(&d.path).unwrap();
    assert!(!rep.all_ok());
    assert_eq!(rep.files.len(), 6);
    for f in &rep.files {
        assert_eq!(f.bytes, Some(20 * RECORD_BYTES as u64));
        assert_eq!(f.records, Some(20));
        assert_eq!(f.status, FileStatus::ShaMismatch, "{}", f.name);
        assert!(!f.sha_ok());
    }
    assert_eq!(rep.train.records, 100);
    assert_eq!(rep.train.class_counts, train.class_counts());
    assert_eq!(rep.train.first_labels, train.labels[..10].to_vec());
    assert_eq!(rep.test.records, 20);
    assert_eq!(rep.test.class_counts, test.class_counts());
    let text = rep.to_string();
    assert!(
        text.contains("data_batch_1.bin") && text.contains("MISMATCH"),
        "{text}"
    );
    assert!(text.contains("NOT OK"), "{text}");

    // Damage three files: missing, truncated (with a known SHA-256), bad label.
    std::fs::remove_file(d.path.join("data_batch_2.bin")).unwrap();
    std::fs::write(d.path.join("data_batch_4.bin"), b"abc").unwrap();
    let mut t = test.clone();
    t.labels[7] = 42;
    write_batch_file(d.path.join("test_batch.bin"), &t).unwrap();
    let rep = verify(&d.path).unwrap();
    let by_name = |n: &str| rep.files.iter().find(|f| f.name == n).unwrap();
    assert_eq!(by_name("data_batch_2.bin").status, FileStatus::Missing);
    assert_eq!(by_name("data_batch_2.bin").bytes, None);
    let f4 = by_name("data_batch_4.bin");
    assert_eq!(f4.status, FileStatus::BadSize);
    assert_eq!(f4.bytes, Some(3));
    assert_eq!(
        f4.sha256.as_deref(),
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(
        by_name("test_batch.bin").status,
        FileStatus::BadLabel {
            record: 7,
            label: 42
        }
    );
    assert_eq!(rep.train.records, 60);
    assert_eq!(rep.test.records, 0);
    let text = rep.to_string();
    for s in ["MISSING", "BAD SIZE", "BAD LABEL 42 at record 7"] {
        assert!(text.contains(s), "missing '{s}' in:\n{text}");
    }
}

// ---------------------------------------------------------------- directory resolution

#[test]
fn data_dir_resolution_order() {
    let flag = Path::new("/some/flag/dir");
    let env = Some(OsString::from("/from/env"));
    let r = resolve_with(Some(flag), env.clone());
    assert_eq!((r.path.as_path(), r.source), (flag, DataSource::Flag));
    let r = resolve_with(None, env);
    assert_eq!(
        (r.path, r.source),
        (PathBuf::from("/from/env"), DataSource::Env)
    );
    for e in [None, Some(OsString::new())] {
        let r = resolve_with(None, e);
        assert_eq!(
            (r.path, r.source),
            (PathBuf::from(DEFAULT_DATA_DIR), DataSource::Default)
        );
    }
}

#[test]
fn ci_detection() {
    let v = |s: &str| Some(OsString::from(s));
    assert!(!is_ci(None));
    for s in ["", "false", "FALSE", "0", "  "] {
        assert!(!is_ci(v(s).as_ref()), "{s:?}");
    }
    for s in ["true", "1", "yes", "github"] {
        assert!(is_ci(v(s).as_ref()), "{s:?}");
    }
}

#[test]
fn real_data_lookup_finds_complete_dirs_and_skips_locally() {
    let (d, _, _) = fake_dir("realdata", 1, 50);
    assert_eq!(
        real_data_with(DataDir::given(&d.path), false),
        Some(d.path.clone())
    );
    std::fs::remove_file(d.path.join("test_batch.bin")).unwrap();
    assert_eq!(real_data_with(DataDir::given(&d.path), false), None);
}

#[test]
#[should_panic(expected = "CI must provide the data")]
fn real_data_lookup_panics_in_ci_when_missing() {
    let gone = std::env::temp_dir().join("eosbench-definitely-missing-data-dir");
    real_data_with(DataDir::given(gone), true);
}
