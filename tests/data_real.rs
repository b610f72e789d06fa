//! Integration tests on the real CIFAR-10 binary files.
//!
//! The directory comes from `EOSBENCH_DATA` (or the default `datasets/cifar-10-batches-bin`).
//! Without the files the tests print a skip message and pass locally, but fail in CI (see
//! `eosbench::data::real_data_for_tests`). The expected numbers are facts of the official
//! release (record order, labels, pixel values).

use eosbench::data::{
    load_cifar10, load_raw, verify, DatasetName, Split, Subset, CLASSES, IMAGE_BYTES, PLANE_BYTES,
};

const FIRST_TRAIN: [u8; 10] = [6, 9, 9, 4, 1, 1, 2, 7, 8, 3];
const FIRST_TEST: [u8; 10] = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1];
const FIRST_5K_COUNTS: [usize; 10] = [505, 460, 519, 486, 519, 488, 519, 486, 520, 498];

fn range(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

#[test]
fn real_files_match_the_official_release() {
    let Some(dir) = eosbench::data::real_data_for_tests() else {
        return;
    };
    let rep = verify(&dir).expect("verify");
    println!("{rep}");
    assert!(rep.all_ok(), "{rep}");
    assert!(rep
        .files
        .iter()
        .all(|f| f.sha_ok() && f.records == Some(10_000)));
    assert_eq!(rep.train.records, 50_000);
    assert_eq!(rep.test.records, 10_000);
    assert_eq!(rep.train.class_counts, [5000; CLASSES]);
    assert_eq!(rep.test.class_counts, [1000; CLASSES]);
    assert_eq!(rep.train.first_labels, FIRST_TRAIN);
    assert_eq!(rep.test.first_labels, FIRST_TEST);
}

#[test]
fn raw_records_have_the_official_order_and_pixels() {
    let Some(dir) = eosbench::data::real_data_for_tests() else {
        return;
    };
    let train = load_raw(&dir, Split::Train).expect("train");
    assert_eq!(train.len(), 50_000);
    assert_eq!(train.images.len(), 50_000 * IMAGE_BYTES);
    assert_eq!(train.class_counts(), [5000; CLASSES]);
    assert_eq!(train.labels[..10], FIRST_TRAIN);
    // Image 0 starts R = 59, 43, 50 and ends B = 140, 84, 72; image 1 starts 154, 126, 105.
    let im0 = train.image(0);
    assert_eq!(im0[..3], [59, 43, 50]);
    assert_eq!(im0[IMAGE_BYTES - 3..], [140, 84, 72]);
    assert_eq!(train.image(1)[..3], [154, 126, 105]);
    // Per-channel pixel means on the 0-255 scale: 125.307, 122.950, 113.865.
    for (c, want) in [125.307, 122.950, 113.865].into_iter().enumerate() {
        let sum: u64 = train
            .images
            .chunks_exact(IMAGE_BYTES)
            .map(|im| {
                im[c * PLANE_BYTES..(c + 1) * PLANE_BYTES]
                    .iter()
                    .map(|&b| b as u64)
                    .sum::<u64>()
            })
            .sum();
        let mean = sum as f64 / (50_000.0 * PLANE_BYTES as f64);
        assert!((mean - want).abs() < 1e-3, "channel {c}: {mean}");
    }
    let mut first5k = [0usize; CLASSES];
    for &l in &train.labels[..5000] {
        first5k[l as usize] += 1;
    }
    assert_eq!(first5k, FIRST_5K_COUNTS);

    let test = load_raw(&dir, Split::Test).expect("test");
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.class_counts(), [1000; CLASSES]);
    assert_eq!(test.labels[..10], FIRST_TEST);
    assert_eq!(test.image(0)[..3], [158, 159, 165]);
}

#[test]
fn preprocessing_uses_full_train_statistics_then_subsets() {
    let Some(dir) = eosbench::data::real_data_for_tests() else {
        return;
    };
    let all = load_cifar10(&dir, Split::Train, Subset::All).expect("full train");
    assert_eq!((all.n, all.d, all.classes), (50_000, 3072, 10));
    let (mean, std) = all.feature_mean_std();
    let max_mean = mean.iter().fold(0.0f64, |a, m| a.max(m.abs()));
    let max_std_dev = std.iter().fold(0.0f64, |a, s| a.max((s - 1.0).abs()));
    println!("full train: max |mean| = {max_mean:.2e}, max |std - 1| = {max_std_dev:.2e}");
    assert!(max_mean < 1e-4, "full-train mean {max_mean}");
    assert!(max_std_dev < 1e-4, "full-train std {max_std_dev}");

    let name: DatasetName = "cifar10-5k".parse().unwrap();
    let five = name.load(&dir).expect("cifar10-5k");
    assert_eq!(five.name, "cifar10-5k");
    assert_eq!((five.n, five.d), (5000, 3072));
    assert_eq!(five.class_counts(), FIRST_5K_COUNTS.to_vec());
    assert_eq!(five.labels[..10], FIRST_TRAIN);
    // The 5k subset is the first 5000 rows of the standardized full split ...
    assert_eq!(five.x[..], all.x[..5000 * IMAGE_BYTES]);
    // ... so its own per-feature statistics are close to, but not exactly, standardized.
    let (m5, s5) = five.feature_mean_std();
    let (mlo, mhi) = range(&m5);
    let (slo, shi) = range(&s5);
    println!("cifar10-5k per-feature mean in [{mlo:.4}, {mhi:.4}], std in [{slo:.4}, {shi:.4}]");
    assert!(mlo.abs().max(mhi.abs()) > 0.01, "subset means all ≈ 0");
    assert!(mlo.abs().max(mhi.abs()) < 0.2);
    assert!(slo > 0.8 && shi < 1.2);

    let test = load_cifar10(&dir, Split::Test, Subset::All).expect("test");
    assert_eq!(test.name, "cifar10-test");
    assert_eq!(test.class_counts(), vec![1000; 10]);
    let (mt, st) = test.feature_mean_std();
    let (tlo, thi) = range(&mt);
    let (tslo, tshi) = range(&st);
    println!("cifar10-test (train statistics) mean in [{tlo:.4}, {thi:.4}], std in [{tslo:.4}, {tshi:.4}]");
    // Test is standardized with the training statistics, not its own.
    assert!(tlo.abs().max(thi.abs()) > 1e-3);
    assert!(tlo.abs().max(thi.abs()) < 0.2);
}
