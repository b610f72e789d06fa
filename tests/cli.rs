//! End-to-end tests of the `eosbench` binary: argument handling, exit codes, error messages,
//! the init → loss round trip and the derivative check on synthetic data (no files needed), plus
//! the real-data commands when the CIFAR-10 files are available.

use std::path::Path;
use std::process::{Command, Output};

use eosbench::data::ScratchDir;
use serde_json::Value;

/// Run the binary with `args`, without any `EOSBENCH_DATA` from the test environment unless
/// `env` sets it.
fn run_with_env(args: &[&str], env: Option<(&str, &str)>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eosbench"));
    cmd.args(args).env_remove("EOSBENCH_DATA");
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    cmd.output().expect("failed to start the eosbench binary")
}

fn run(args: &[&str]) -> Output {
    run_with_env(args, None)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Require success and return stdout.
fn succeeded(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed ({:?}):\n{}{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Require exit code `code` and return stderr.
fn failed_with(o: &Output, code: i32) -> String {
    assert_eq!(o.status.code(), Some(code), "{}{}", stdout(o), stderr(o));
    stderr(o)
}

/// Require every one of `parts` in `text`.
fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "missing '{part}' in:\n{text}");
    }
}

/// Run with `--json`, require success, and parse stdout.
fn run_json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&succeeded(&run(&a))).expect("stdout is JSON")
}

#[test]
fn help_lists_every_subcommand_with_a_summary() {
    let out = succeeded(&run(&["--help"]));
    for (cmd, words) in [
        ("data", "Dataset"),
        ("init", "checkpoint"),
        ("loss", "loss and accuracy"),
        ("verify", "finite differences"),
        ("sharpness", "eigenvalues"),
        ("train", "gradient descent"),
        ("plot", "figure"),
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{cmd} ")))
            .unwrap_or_else(|| panic!("no line for '{cmd}' in --help:\n{out}"));
        assert!(line.contains(words), "'{cmd}' help line: {line}");
    }
    assert_contains(&out, &["--threads", "--data-dir", "--json"]);
    assert_contains(&succeeded(&run(&["data", "--help"])), &["verify"]);
}

#[test]
fn usage_errors_exit_2() {
    failed_with(&run(&["frobnicate"]), 2);
    // init needs an architecture.
    failed_with(
        &run(&["init", "--out", "/tmp/never-written.safetensors"]),
        2,
    );
    // --params and --preset are exclusive.
    failed_with(
        &run(&["loss", "--preset", "fc-tanh", "--params", "x.safetensors"]),
        2,
    );
    // A step must be positive.
    let err = failed_with(&run(&["verify", "--steps", "1e-4,-1"]), 2);
    assert_contains(&err, &["not a positive number"]);
}

#[test]
fn unknown_preset_is_a_clear_usage_error() {
    let o = run(&[
        "loss",
        "--preset",
        "fc-sigmoid",
        "--dataset",
        "synthetic-10",
    ]);
    let err = failed_with(&o, 2);
    assert!(err.starts_with("error:"), "{err}");
    assert_contains(&err, &["unknown preset 'fc-sigmoid'", "fc-tanh", "fc-relu"]);
}

#[test]
fn missing_data_dir_names_the_path_and_the_fix() {
    let scratch = ScratchDir::new("cli-missing").expect("scratch dir");
    let missing = scratch.path.join("no-such-cifar");
    let missing_s = missing.to_str().expect("utf-8 temp path");

    // From the flag.
    let o = run(&["loss", "--preset", "fc-tanh", "--data-dir", missing_s]);
    let err = failed_with(&o, 1);
    assert!(err.starts_with("error: "), "{err}");
    assert_contains(&err, &[missing_s, "--data-dir", "EOSBENCH_DATA"]);
    assert!(
        stdout(&o).is_empty(),
        "no result on failure: {}",
        stdout(&o)
    );

    // From the environment variable.
    let o = run_with_env(&["data", "verify"], Some(("EOSBENCH_DATA", missing_s)));
    let err = failed_with(&o, 1);
    assert_contains(&err, &[missing_s, "the EOSBENCH_DATA environment variable"]);
}

#[test]
fn missing_checkpoint_is_a_clear_runtime_error() {
    let scratch = ScratchDir::new("cli-nockpt").expect("scratch dir");
    let path = scratch.path.join("absent.safetensors");
    let o = run(&[
        "loss",
        "--params",
        path.to_str().unwrap(),
        "--dataset",
        "synthetic-10",
    ]);
    let err = failed_with(&o, 1);
    assert_contains(&err, &["absent.safetensors", "does not exist"]);
}

#[test]
fn network_and_data_shapes_must_agree() {
    let scratch = ScratchDir::new("cli-shape").expect("scratch dir");
    let ckpt = scratch.path.join("small.safetensors");
    let ckpt_s = ckpt.to_str().unwrap();
    let o = run(&[
        "init",
        "--widths",
        "4",
        "--input-dim",
        "7",
        "--classes",
        "3",
        "--out",
        ckpt_s,
    ]);
    succeeded(&o);
    // A fake CIFAR directory has d = 3072 and 10 classes; the checkpoint takes 7 inputs.
    let cifar = scratch.path.join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    eosbench::data::write_fake_cifar_dir(&cifar, 20, 3).expect("fake CIFAR files");
    let o = run(&[
        "loss",
        "--params",
        ckpt_s,
        "--dataset",
        "cifar10-10",
        "--data-dir",
        cifar.to_str().unwrap(),
    ]);
    let err = failed_with(&o, 1);
    assert_contains(&err, &["dimension 7", "d = 3072"]);
}

#[test]
fn data_verify_reports_files_that_are_not_the_official_release() {
    let scratch = ScratchDir::new("cli-fake").expect("scratch dir");
    eosbench::data::write_fake_cifar_dir(&scratch.path, 12, 9).expect("fake CIFAR files");
    let dir = scratch.path.to_str().unwrap();
    let o = run(&["data", "verify", "--data-dir", dir]);
    let err = failed_with(&o, 1);
    // The report is printed.
    assert_contains(&stdout(&o), &["SHA-256 MISMATCH", "NOT OK"]);
    assert!(err.starts_with("error: "), "{err}");
    assert_contains(&err, &["do not match the official"]);
    let o = run(&["data", "verify", "--data-dir", dir, "--json"]);
    failed_with(&o, 1);
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    assert_eq!(v["all_ok"], false);
    assert_eq!(v["files"].as_array().unwrap().len(), 6);
    assert_eq!(v["files"][0]["records"], 12);
    assert_eq!(v["files"][0]["sha_ok"], false);
    assert_eq!(v["train"]["records"], 60);
}

fn init_then_loss_round_trip(dtype: &str, dir: &Path) {
    let ckpt = dir.join(format!("fc-{dtype}.safetensors"));
    let ckpt_s = ckpt.to_str().unwrap();
    let wrote = run_json(&[
        "init", "--preset", "fc-tanh", "--seed", "5", "--out", ckpt_s, "--dtype", dtype,
    ]);
    assert_eq!(wrote["p"], 656_810);
    assert_eq!(wrote["path"], ckpt_s);
    assert_eq!(wrote["seed"], 5);
    assert!(ckpt.is_file());

    // `loss --json` of the network `net` on the same data, threads and precision.
    let loss_of = |net: &[&str]| {
        let mut args = vec!["loss"];
        args.extend_from_slice(net);
        args.extend_from_slice(&[
            "--dataset",
            "synthetic-64",
            "--threads",
            "1",
            "--dtype",
            dtype,
        ]);
        run_json(&args)
    };
    let a = loss_of(&["--preset", "fc-tanh", "--seed", "5"]);
    let b = loss_of(&["--params", ckpt_s]);
    // Same parameters bit for bit, same data, same kernels: identical loss and accuracy.
    assert_eq!(a["loss"], b["loss"], "{a}\n{b}");
    assert_eq!(a["accuracy"], b["accuracy"]);
    assert_eq!(a["spec"], b["spec"]);
    assert_eq!(b["p"], 656_810);
    assert_eq!(b["model"]["seed"], 5, "seed recorded in the checkpoint");
    // The first layer's GEMM is recorded: faer in f64; in f32, the own one on AVX-512.
    let gemm = b["first_layer_gemm"].as_str().unwrap();
    let own = dtype == "f32" && b["kernel_path"] == "avx512";
    assert_eq!(gemm, if own { "own" } else { "faer" }, "{b}");
    let loss = a["loss"].as_f64().unwrap();
    // Untrained 10-output net, MSE against one-hot targets: about ½·(1 + small outputs²).
    assert!(loss > 0.3 && loss < 2.0, "loss {loss}");
    // A different seed is a different point.
    let c = loss_of(&["--preset", "fc-tanh", "--seed", "6"]);
    assert_ne!(a["loss"], c["loss"]);
}

#[test]
fn init_then_loss_from_checkpoint_matches_preset_and_seed() {
    let scratch = ScratchDir::new("cli-roundtrip").expect("scratch dir");
    init_then_loss_round_trip("f32", &scratch.path);
    init_then_loss_round_trip("f64", &scratch.path);
}

#[test]
fn text_output_of_loss_and_init() {
    let scratch = ScratchDir::new("cli-text").expect("scratch dir");
    let ckpt = scratch.path.join("nested/dir/net.safetensors");
    let o = run(&[
        "init",
        "--widths",
        "8,8",
        "--activation",
        "gelu",
        "--input-dim",
        "12",
        "--classes",
        "3",
        "--out",
        ckpt.to_str().unwrap(),
    ]);
    // p = (12·8 + 8) + (8·8 + 8) + (8·3 + 3) = 203.
    assert_contains(
        &succeeded(&o),
        &["12-8-8-3 gelu, p = 203", "net.safetensors"],
    );
    let o = run(&[
        "loss",
        "--params",
        ckpt.to_str().unwrap(),
        "--dataset",
        "synthetic-30",
        "--loss",
        "ce",
    ]);
    assert_contains(
        &succeeded(&o),
        &[
            "dataset:",
            "n:",
            "model:",
            "loss:",
            "accuracy:",
            "seconds:",
            "p = 203",
            "synthetic-30",
        ],
    );
}

fn verify_json(extra: &[&str]) -> Output {
    let mut args = vec![
        "verify",
        "--dataset",
        "synthetic-200",
        "--widths",
        "16,12",
        "--input-dim",
        "24",
        "--classes",
        "5",
        "--threads",
        "1",
        "--json",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn verify_passes_on_small_custom_nets() {
    for extra in [
        &["--activation", "tanh", "--loss", "mse"][..],
        &[
            "--activation",
            "softplus",
            "--loss",
            "ce",
            "--directions",
            "3",
        ][..],
    ] {
        let o = verify_json(extra);
        assert!(
            o.status.success(),
            "verify {extra:?} failed:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        // The progress bar draws only on a terminal: piped stderr stays empty.
        assert!(o.stderr.is_empty(), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["all_pass"], true, "{v}");
        assert_eq!(v["p"], (24 * 16 + 16) + (16 * 12 + 12) + (12 * 5 + 5));
        let checks = v["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 9);
        for c in checks {
            let (val, tol) = (c["value"].as_f64().unwrap(), c["tol"].as_f64().unwrap());
            assert!(c["pass"] == true && val <= tol, "{c}");
        }
        // The reported best errors are well inside the default tolerances, not just below.
        assert!(checks[0]["value"].as_f64().unwrap() < 1e-7, "{}", checks[0]);
        assert!(checks[1]["value"].as_f64().unwrap() < 1e-6, "{}", checks[1]);
        let dirs = v["directions"].as_array().unwrap();
        let want = if extra.contains(&"3") { 3 } else { 4 };
        assert_eq!(dirs.len(), want);
        for d in dirs {
            assert!(d["u_gu"].as_f64().unwrap() >= 0.0, "{d}");
            assert_eq!(
                d["grad_fd"].as_array().unwrap().len(),
                4,
                "default step grid"
            );
        }
    }
}

#[test]
fn verify_keeps_relu_steps_inside_the_nearest_kink() {
    // 2 × 64 ReLU units on 1000 examples: the default grid's steps all cross kinks of some
    // units (errors of O(1) for the Hessian-vector product).
    let o = run(&[
        "verify",
        "--dataset",
        "synthetic-1000",
        "--widths",
        "64,64",
        "--input-dim",
        "100",
        "--activation",
        "relu",
        "--threads",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["all_pass"], true, "{v}");
    let scale = v["theta_norm"].as_f64().unwrap().max(1.0);
    for d in v["directions"].as_array().unwrap() {
        let margin = d["kink_margin_h"].as_f64().expect("a finite kink distance") / scale;
        assert!(margin > 0.0 && margin < 1e-6, "{d}");
        let steps = d["steps"].as_array().unwrap();
        assert!(!steps.is_empty());
        for s in steps {
            assert!(s.as_f64().unwrap() < 0.25 * margin * (1.0 + 1e-12), "{d}");
        }
        assert!(d["hvp_err"].as_f64().unwrap() < 1e-6, "{d}");
    }
    // Smooth activations keep the whole grid and report no kink.
    let v: Value = serde_json::from_slice(&verify_json(&[]).stdout).unwrap();
    for d in v["directions"].as_array().unwrap() {
        assert!(d["kink_margin_h"].is_null(), "{d}");
        assert_eq!(d["steps"].as_array().unwrap().len(), 4);
    }
}

#[test]
fn verify_fails_with_exit_1_above_tolerance() {
    // No finite difference agrees to 1e-15 relative.
    let o = verify_json(&["--tol-grad", "1e-15"]);
    let err = failed_with(&o, 1);
    let v: Value = serde_json::from_slice(&o.stdout).expect("the results are still printed");
    assert_eq!(v["all_pass"], false);
    assert_eq!(v["checks"][0]["pass"], false);
    assert!(err.starts_with("error: derivative check failed"), "{err}");
    assert_contains(&err, &["gradient vs FD of loss"]);
}

#[test]
fn real_data_commands() {
    let Some(dir) = eosbench::data::real_data_for_tests() else {
        return;
    };
    let dir = dir.to_str().expect("utf-8 data path");
    assert_contains(
        &succeeded(&run(&["data", "verify", "--data-dir", dir])),
        &[
            "ALL OK",
            "first ten labels: 6 9 9 4 1 1 2 7 8 3",
            "first ten labels: 3 8 8 0 6 6 1 6 3 1",
        ],
    );
    let v = run_json(&["data", "verify", "--data-dir", dir]);
    assert_eq!(v["all_ok"], true);
    assert_eq!(v["train"]["first_labels"][0], 6);

    let o = run(&[
        "loss",
        "--preset",
        "fc-tanh",
        "--seed",
        "0",
        "--data-dir",
        dir,
    ]);
    assert_contains(&succeeded(&o), &["p = 656810", "cifar10-5k", "n:", "5000"]);
}

#[test]
fn sharpness_finds_top_eigenvalues_and_saves_vectors() {
    let dir = std::env::temp_dir().join(format!("eosbench-sharp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let vec_path = dir.join("ritz.safetensors");
    let common = [
        "--widths",
        "12",
        "--input-dim",
        "8",
        "--classes",
        "3",
        "--dataset",
        "synthetic-120",
        "-k",
        "2",
    ];
    let mut args: Vec<&str> = vec!["--json", "sharpness"];
    args.extend(common);
    args.extend([
        "--tol",
        "1e-8",
        "--dtype",
        "f64",
        "--save-vectors",
        vec_path.to_str().unwrap(),
    ]);
    let v = run_json(&args);
    assert_eq!(v["status"], "converged", "{v}");
    let vals: Vec<f64> = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(vals.len(), 2);
    assert!(vals[0] >= vals[1] && vals[1] > 0.0, "{vals:?}");
    for (r, l) in v["residuals"].as_array().unwrap().iter().zip(&vals) {
        assert!(r.as_f64().unwrap() <= 1e-8 * l, "{v}");
    }
    let bytes = std::fs::read(&vec_path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("vectors").unwrap();
    let p = v["p"].as_u64().unwrap() as usize;
    assert_eq!(t.shape(), &[2, p]);
    // The Gauss–Newton matrix is PSD and, for this net, its top eigenvalue is close to but
    // not equal to the Hessian's.
    let mut args: Vec<&str> = vec!["--json", "sharpness"];
    args.extend(common);
    args.extend(["--tol", "1e-8", "--dtype", "f64", "--curvature", "ggn"]);
    let g = run_json(&args);
    let g0 = g["values"][0].as_f64().unwrap();
    assert!(g0 > 0.0 && (g0 - vals[0]).abs() < 0.5 * vals[0], "{g}");

    // --stability: ∇S at the top vector, α and β; saved beside the vectors.
    let mut args: Vec<&str> = vec!["--json", "sharpness"];
    args.extend(common);
    args.extend(["--tol", "1e-8", "--dtype", "f64", "--stability"]);
    args.extend(["--save-vectors", vec_path.to_str().unwrap()]);
    let st = run_json(&args);
    let (norm, alpha, beta) = (
        st["stability"]["grad_s_norm"].as_f64().unwrap(),
        st["stability"]["alpha"].as_f64().unwrap(),
        st["stability"]["beta"].as_f64().unwrap(),
    );
    assert!(norm > 0.0 && alpha.is_finite(), "{st}");
    assert!((beta - norm * norm).abs() <= 1e-12 * beta, "{st}");
    let bytes = std::fs::read(&vec_path).unwrap();
    let saved = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let gs = saved.tensor("sharpness_gradient").unwrap();
    assert_eq!(gs.shape(), &[p]);
    let sq: f64 = gs
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()).powi(2))
        .sum();
    assert!((sq - beta).abs() <= 1e-12 * beta, "saved ∇S vs β");
    // Only of the Hessian's top pair.
    let mut args: Vec<&str> = vec!["sharpness"];
    args.extend(common);
    args.extend(["--curvature", "ggn", "--stability"]);
    let err = failed_with(&run(&args), 1);
    assert_contains(
        &err,
        &["--stability needs the top eigenpair of the Hessian", "Fix:"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sharpness_help_keeps_its_dtype_note_under_precision() {
    let out = succeeded(&run(&["sharpness", "--help"]));
    let at = |s: &str| {
        out.find(s)
            .unwrap_or_else(|| panic!("no '{s}' in sharpness --help:\n{out}"))
    };
    let order = [
        "Model:",
        "Data:",
        "Precision:",
        "Lanczos runs in f64 either way",
        "Solver:",
        "Output:",
    ];
    for pair in order.windows(2) {
        assert!(at(pair[0]) < at(pair[1]), "{pair:?} out of order:\n{out}");
    }
}

/// The rows of a CSV file (header first), split at commas.
fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

#[test]
fn train_writes_a_complete_run_directory() {
    let scratch = ScratchDir::new("train").unwrap();
    let root = scratch.path.to_str().unwrap();
    let net = [
        "--widths",
        "16",
        "--input-dim",
        "10",
        "--classes",
        "3",
        "--dataset",
        "synthetic-90",
    ];
    let mut args = vec!["--json", "train", "--lr", "2/10", "--max-steps", "12"];
    args.extend(net);
    args.extend(["--eig-every", "5", "-k", "2", "--results", root]);
    args.extend(["--experiment", "fig", "--run-id", "r1"]);
    let v = serde_json::from_str::<Value>(&succeeded(&run(&args))).unwrap();
    let dir = scratch.path.join("fig").join("r1");
    assert_eq!(v["run_dir"].as_str().unwrap(), dir.to_str().unwrap());
    assert_eq!(v["outcome"]["stop"], "max-steps", "{v}");
    assert_eq!(v["outcome"]["steps"], 12);

    // One row per evaluated step 0..=12, one estimate per fifth step.
    let steps = csv_rows(&dir.join("steps.csv"));
    assert_eq!(
        steps[0],
        [
            "step",
            "train_loss",
            "train_accuracy",
            "grad_norm",
            "t_step_ms"
        ]
    );
    assert_eq!(steps.len(), 14);
    let loss: Vec<f64> = steps[1..].iter().map(|r| r[1].parse().unwrap()).collect();
    assert!(loss[12] < loss[0], "GD lowers the loss: {loss:?}");
    let eigs = csv_rows(&dir.join("eigs.csv"));
    assert_eq!(
        eigs[0][..5],
        ["step", "lambda_1", "lambda_2", "residual_1", "residual_2"]
    );
    let at: Vec<&str> = eigs[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(at, ["0", "5", "10"]);
    let col = |name: &str| eigs[0].iter().position(|c| c == name).unwrap();
    for (i, r) in eigs[1..].iter().enumerate() {
        // The history tracker's first estimate is a cold Lanczos solve.
        let strategy = if i == 0 { "lanczos" } else { "history" };
        assert_eq!(r[col("strategy")], strategy, "{r:?}");
        assert!(r[col("rho")].parse::<f64>().is_ok(), "{r:?}");
        assert!(
            r[col("check")].is_empty(),
            "no cold check in 3 estimates: {r:?}"
        );
    }
    for r in &eigs[1..] {
        let (l1, l2): (f64, f64) = (r[1].parse().unwrap(), r[2].parse().unwrap());
        assert!(l1 >= l2 && l1 > 0.0, "{r:?}");
    }
    assert_eq!(
        v["outcome"]["last_sharpness"].as_f64().unwrap(),
        eigs[3][1].parse::<f64>().unwrap()
    );

    // run.json carries the configuration, the provenance and the outcome.
    let rj: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(rj["config"]["lr"], 0.2);
    assert_eq!(rj["config"]["eig_every"], 5);
    assert_eq!(rj["outcome"], v["outcome"]);
    assert!(rj["meta"]["git_revision"].is_string());
    let svg = std::fs::read_to_string(dir.join("figure.svg")).unwrap();
    assert_contains(
        &svg,
        &["<svg", "train loss", "sharpness", "2/η = 10\n</text>"],
    );

    // The final checkpoint holds the parameters of the last row.
    let ck = dir.join("final.safetensors");
    let mut args = vec!["--json", "loss", "--params", ck.to_str().unwrap()];
    args.extend(&net[6..]);
    let l = serde_json::from_str::<Value>(&succeeded(&run(&args))).unwrap();
    let got = l["loss"].as_f64().unwrap();
    assert!(
        (got - loss[12]).abs() <= 1e-6 * loss[12],
        "{got} vs {}",
        loss[12]
    );

    // An existing run id is never overwritten.
    let mut args = vec!["train", "--lr", "0.1", "--max-steps", "1"];
    args.extend(net);
    args.extend(["--results", root, "--experiment", "fig", "--run-id", "r1"]);
    assert_contains(&failed_with(&run(&args), 1), &["already exists"]);

    // plot redraws a run's figure from its tables, byte for byte.
    let (r1, again) = (dir.to_str().unwrap(), scratch.path.join("again.svg"));
    succeeded(&run(&["plot", r1, "--out", again.to_str().unwrap()]));
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(dir.join("figure.svg")).unwrap()
    );
    // Several runs overlay, one step size each; they need --out.
    let mut args = vec!["train", "--lr", "0.1", "--max-steps", "6"];
    args.extend(net);
    args.extend(["--results", root, "--experiment", "fig", "--run-id", "r2"]);
    succeeded(&run(&args));
    let r2 = scratch.path.join("fig").join("r2");
    let both = scratch.path.join("both.svg");
    let v = run_json(&[
        "plot",
        r1,
        r2.to_str().unwrap(),
        "--out",
        both.to_str().unwrap(),
    ]);
    assert_eq!(v["runs"][1]["steps"], 7, "{v}");
    let svg = std::fs::read_to_string(&both).unwrap();
    assert_contains(
        &svg,
        &[
            "η = 0.2\n",
            "η = 0.1\n",
            "2/η = 10\n",
            "2/η = 20\n",
            "tanh on synthetic-90 (seed 0) (mse)\n",
        ],
    );
    let err = failed_with(&run(&["plot", r1, r2.to_str().unwrap()]), 1);
    assert_contains(&err, &["--out FILE"]);
    // The sharpness axis names the operator tracked: the Hessian above, the Gauss–Newton
    // matrix here; an overlay of both names neither.
    assert_contains(&svg, &["sharpness (top Hessian eigenvalue)"]);
    let mut args = vec![
        "train",
        "--lr",
        "0.1",
        "--max-steps",
        "4",
        "--curvature",
        "ggn",
    ];
    args.extend(net);
    args.extend(["--results", root, "--experiment", "fig", "--run-id", "r3"]);
    succeeded(&run(&args));
    let r3 = scratch.path.join("fig").join("r3");
    let svg = std::fs::read_to_string(r3.join("figure.svg")).unwrap();
    assert_contains(&svg, &["sharpness (top Gauss–Newton eigenvalue)"]);
    assert!(
        !svg.contains("Hessian"),
        "a Gauss–Newton run's figure names the Hessian"
    );
    let mixed = scratch.path.join("mixed.svg");
    succeeded(&run(&[
        "plot",
        r1,
        r3.to_str().unwrap(),
        "--out",
        mixed.to_str().unwrap(),
    ]));
    let svg = std::fs::read_to_string(&mixed).unwrap();
    assert_contains(&svg, &["top eigenvalue (Hessian or Gauss–Newton)"]);
    let err = failed_with(&run(&["plot", root]), 1);
    assert_contains(&err, &["run.json", "eosbench train"]);
}

#[test]
fn train_rejects_step_sizes_that_are_not_positive() {
    for lr in ["0", "-0.5", "2/0", "fast"] {
        let err = failed_with(&run(&["train", "--lr", lr, "--dataset", "synthetic-10"]), 2);
        assert_contains(&err, &["--lr"]);
    }
}

#[test]
fn train_rejects_a_cold_start_for_the_history_tracker() {
    let args = [
        "train",
        "--lr",
        "0.1",
        "--dataset",
        "synthetic-10",
        "--cold-start",
    ];
    let err = failed_with(&run(&args), 1);
    assert_contains(&err, &["--cold-start", "--tracker lanczos"]);
}

/// Waits until the file at `path()` (once it names one) holds `lines` lines; fails after
/// `limit_s` seconds saying that `what` did not start.
fn wait_for_lines(
    path: impl Fn() -> Option<std::path::PathBuf>,
    lines: usize,
    limit_s: u64,
    what: &str,
) {
    let t0 = std::time::Instant::now();
    while path()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map_or(0, |s| s.lines().count())
        < lines
    {
        assert!(t0.elapsed().as_secs() < limit_s, "{what} did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends `signal` (e.g. "-INT") to `child` and waits for it to exit; kills it and fails if it
/// is still running after `limit_s` seconds.
fn signal_and_wait(mut child: std::process::Child, signal: &str, limit_s: u64) -> Output {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed().as_secs() > limit_s {
            child.kill().unwrap();
            panic!("{signal} did not stop the process");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A signal (SIGINT as from Ctrl-C, or SIGTERM as from a scheduler) ends a training run after
/// its current step: the tables, run.json (with the stop), the figure and the final
/// checkpoint are all written, and the exit status is 130.
#[test]
fn a_signal_stops_training_with_its_files_complete() {
    let scratch = ScratchDir::new("train-signal").unwrap();
    let root = scratch.path.to_str().unwrap();
    for (signal, id) in [("-INT", "int"), ("-TERM", "term")] {
        let child = Command::new(env!("CARGO_BIN_EXE_eosbench"))
            .args([
                "--json",
                "train",
                "--lr",
                "0.1",
                "--max-steps",
                "100000000",
                "--acc-goal",
                "1",
            ])
            .args(["--widths", "16", "--input-dim", "10", "--classes", "3"])
            .args(["--dataset", "synthetic-90", "--eig-every", "50", "-k", "1"])
            .args(["--results", root, "--experiment", "sig", "--run-id", id])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let dir = scratch.path.join("sig").join(id);
        // Wait until the run is well under way (a few hundred steps written).
        wait_for_lines(|| Some(dir.join("steps.csv")), 300, 60, "the run");
        // The run has millions of steps left: it must stop because of the signal.
        let out = signal_and_wait(child, signal, 30);
        assert_eq!(
            out.status.code(),
            Some(130),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_contains(&err, &["interrupted by a signal", "complete"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["outcome"]["stop"], "interrupted", "{v}");
        let last = v["outcome"]["steps"].as_u64().unwrap() as usize;
        let steps = csv_rows(&dir.join("steps.csv"));
        assert_eq!(
            steps.len(),
            last + 2,
            "a header and one row per step 0..={last}"
        );
        let rj: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
        assert_eq!(rj["outcome"], v["outcome"]);
        assert!(dir.join("figure.svg").is_file() && dir.join("final.safetensors").is_file());
    }
}

/// Ctrl-C ends a sweep after its current point: sweep.csv, sweep.json (marked interrupted) and
/// the figures hold the points done, and the exit status is 130.
#[test]
fn a_signal_stops_a_sweep_with_the_points_done() {
    let scratch = ScratchDir::new("sweep-signal").unwrap();
    let root = scratch.path.to_str().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_eosbench"))
        .args(["--json", "sweep", "--results", root, "--run-id", "sig"])
        .args(["--datasets", "synthetic-200", "--thread-counts", "1"])
        .args([
            "--widths",
            "8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25",
        ])
        .args([
            "--trackers",
            "none,history",
            "--steps",
            "400",
            "--warmup",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // RESULTS/sweep/HOST/sig, HOST as the sweep spells this machine's name.
    let csv = || -> Option<std::path::PathBuf> {
        let host = std::fs::read_dir(scratch.path.join("sweep"))
            .ok()?
            .next()?
            .ok()?;
        Some(host.path().join("sig").join("sweep.csv"))
    };
    wait_for_lines(csv, 3, 120, "the sweep");
    let out = signal_and_wait(child, "-INT", 60);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert_contains(&err, &["interrupted by a signal", "of 36 points"]);
    let dir = csv().unwrap().parent().unwrap().to_path_buf();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json["interrupted"], true);
    let done = json["rows"].as_array().unwrap().len();
    assert!((2..36).contains(&done), "{done} points done");
    assert_eq!(csv_rows(&dir.join("sweep.csv")).len(), done + 1);
    assert!(dir.join("products.svg").is_file() && dir.join("products.png").is_file());
}

/// The overhead harness on a small synthetic grid: one streamed row per point, untracked points
/// without products, tracked ones with products and an overhead ≥ 1, and sweep.json with the
/// machine and every point; a dry run estimates and runs nothing.
#[test]
fn sweep_measures_every_point_of_its_grid() {
    let scratch = ScratchDir::new("sweep").unwrap();
    let root = scratch.path.to_str().unwrap();
    let grid = [
        "--datasets",
        "synthetic-120",
        "--widths",
        "8,16",
        "--thread-counts",
        "1,2",
        "--trackers",
        "none,history",
        "--steps",
        "3",
        "--warmup",
        "1",
    ];
    let mut args = vec!["--json", "sweep", "--dry-run"];
    args.extend(grid);
    let v = serde_json::from_str::<Value>(&succeeded(&run(&args))).unwrap();
    assert_eq!(v["points"].as_array().unwrap().len(), 8);
    assert!(v["estimated_seconds"].as_f64().unwrap() > 0.0);
    assert!(!scratch.path.join("sweep").exists());

    let mut args = vec!["--json", "sweep", "--results", root, "--run-id", "s1"];
    args.extend(grid);
    let v = serde_json::from_str::<Value>(&succeeded(&run(&args))).unwrap();
    let dir = std::path::PathBuf::from(v["run_dir"].as_str().unwrap());
    assert!(dir.starts_with(scratch.path.join("sweep")) && dir.ends_with("s1"));
    let rows = csv_rows(&dir.join("sweep.csv"));
    assert_eq!(rows.len(), 9, "a header and 8 points");
    let col = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    for r in &rows[1..] {
        assert_eq!(r[col("steps")], "3");
        let products = &r[col("products")];
        if r[col("tracker")] == "none" {
            assert!(products.is_empty(), "{r:?}");
        } else {
            assert!(products.parse::<f64>().unwrap() >= 1.0, "{r:?}");
            assert!(r[col("overhead")].parse::<f64>().unwrap() >= 1.0, "{r:?}");
        }
    }
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 8);
    assert!(json["meta"]["git_revision"].is_string());
    assert_eq!(json["window"]["steps"], 3);
    // One data set: no size axis; the other figures are drawn, and redrawn from sweep.json.
    let figures = [
        "overhead-vs-width.svg",
        "speedup-vs-threads.svg",
        "products.svg",
    ];
    for f in figures {
        let svg = std::fs::read_to_string(dir.join(f)).unwrap();
        assert_contains(&svg, &["<svg", "history"]);
        std::fs::remove_file(dir.join(f)).unwrap();
        assert!(dir.join(f.replace(".svg", ".png")).is_file(), "{f} as PNG");
    }
    assert!(!dir.join("step-vs-n.svg").exists());
    let sj = dir.join("sweep.json");
    let p = serde_json::from_str::<Value>(&succeeded(&run(&[
        "--json",
        "sweep",
        "--plot",
        sj.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(p["figures"].as_array().unwrap().len(), 3);
    assert!(figures.iter().all(|f| dir.join(f).exists()));

    // --compare: a sweep against itself regresses nowhere; one twice as slow everywhere does.
    let old = dir.join("sweep.json");
    let old = old.to_str().unwrap();
    let same = [
        "--json",
        "sweep",
        "--compare",
        old,
        "--against",
        old,
        "--fail-on-regression",
    ];
    let c = serde_json::from_str::<Value>(&succeeded(&run(&same))).unwrap();
    let changes = c["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 8);
    assert!(changes
        .iter()
        .all(|ch| ch["ratio"] == 1.0 && ch["regressed"] == false));
    // Twice as slow in median alone: within the old spread, flagged but not failing.
    let mut slower = json.clone();
    for r in slower["rows"].as_array_mut().unwrap() {
        let t = &mut r["stats"]["step_ms"];
        let (p10, p90) = (t["p10"].as_f64().unwrap(), t["p90"].as_f64().unwrap());
        t["median"] = (p90 * 1.1).into();
        t["p10"] = (p10 * 0.5).into();
    }
    let slower_path = scratch.path.join("slower.json");
    std::fs::write(&slower_path, slower.to_string()).unwrap();
    let slower_path = slower_path.to_str().unwrap();
    let args = [
        "sweep",
        "--compare",
        old,
        "--against",
        slower_path,
        "--fail-on-regression",
    ];
    assert_contains(&succeeded(&run(&args)), &["slower within the spread"]);
    // Twice as slow everywhere: significant.
    let mut slow = json.clone();
    for r in slow["rows"].as_array_mut().unwrap() {
        for q in ["p10", "median", "p90"] {
            let t = &mut r["stats"]["step_ms"][q];
            *t = (2.0 * t.as_f64().unwrap()).into();
        }
    }
    let slow_path = scratch.path.join("slow.json");
    std::fs::write(&slow_path, slow.to_string()).unwrap();
    let slow_path = slow_path.to_str().unwrap();
    let args = ["sweep", "--compare", old, "--against", slow_path];
    assert_contains(&succeeded(&run(&args)), &["SLOWER", "8 common points"]);
    let args = [
        "sweep",
        "--compare",
        old,
        "--against",
        slow_path,
        "--fail-on-regression",
    ];
    let err = failed_with(&run(&args), 1);
    assert_contains(&err, &["regressed"]);
    let args = [
        "sweep",
        "--compare",
        slow_path.trim_end_matches(".json"),
        "--against",
        old,
    ];
    assert_contains(&failed_with(&run(&args), 1), &["cannot read", "sweep.json"]);
}

#[test]
fn sweep_rejects_bad_grids_and_mismatched_checkpoints() {
    let err = failed_with(&run(&["sweep", "--dry-run", "--widths", "0"]), 1);
    assert_contains(&err, &["--widths"]);
    let err = failed_with(
        &run(&[
            "sweep",
            "--dry-run",
            "--trackers",
            "none",
            "--eig-every",
            "10",
        ]),
        1,
    );
    assert_contains(&err, &["--eig-every", "tracker"]);
    let err = failed_with(&run(&["sweep", "--dry-run", "--trackers", "arpack"]), 2);
    assert_contains(&err, &["arpack", "history"]);
    let err = failed_with(
        &run(&["sweep", "--dry-run", "--track-on", "cifar10-50k"]),
        1,
    );
    assert_contains(&err, &["--track-on", "cifar10-50k", "cifar10-5k"]);
    // The default grid tracks on the data set nearest 5000 examples only; `all` tracks on each.
    let points = |extra: &[&str]| {
        let mut args = vec!["--json", "sweep", "--dry-run", "--widths", "100"];
        args.extend(["--thread-counts", "1", "--trackers", "none,history"]);
        args.extend(extra);
        let v: Value = serde_json::from_str(&succeeded(&run(&args))).unwrap();
        let pts = v["points"].as_array().unwrap().clone();
        pts.iter()
            .map(|p| format!("{} {}", p["dataset"].as_str().unwrap(), p["tracker"]))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        points(&[]),
        [
            "cifar10-1k \"none\"",
            "cifar10-5k \"none\"",
            "cifar10-5k \"history\"",
            "cifar10-10k \"none\""
        ]
    );
    assert_eq!(points(&["--track-on", "all"]).len(), 6);
    assert_eq!(
        points(&["--track-on", "cifar10-1k"])[1],
        "cifar10-1k \"history\""
    );
    // A checkpoint of width 16 against a grid of width 8.
    let scratch = ScratchDir::new("sweep-from").unwrap();
    let ck = scratch.path.join("w16.safetensors");
    let ck = ck.to_str().unwrap();
    let init = [
        "init",
        "--widths",
        "16,16",
        "--activation",
        "tanh",
        "--out",
        ck,
    ];
    succeeded(&run(&init));
    let args = ["sweep", "--dry-run", "--from", ck, "--widths", "8"];
    let err = failed_with(&run(&args), 1);
    assert_contains(&err, &["width 16", "--widths 16"]);
}

/// `eosbench ops --json` writes the schema `scripts/peers/table.py` merges: the check values
/// and every operation's times, products where a solve ran; `--ops` times a subset (the
/// sharpness check then absent), and an unknown operation is named.
#[test]
fn ops_reports_the_peers_schema() {
    let net = [
        "--widths",
        "8,8",
        "--input-dim",
        "12",
        "--classes",
        "3",
        "--dataset",
        "synthetic-60",
        "--reps",
        "2",
    ];
    let mut args = vec!["--json", "--threads", "2", "ops"];
    args.extend(net);
    let v: Value = serde_json::from_str(&succeeded(&run(&args))).unwrap();
    assert_eq!(
        (v["impl"].as_str(), v["threads"].as_u64()),
        (Some("eosbench"), Some(2))
    );
    assert_eq!(
        (v["n"].as_u64(), v["dtype"].as_str()),
        (Some(60), Some("f32"))
    );
    for key in ["loss", "grad_norm", "vhv", "sharpness"] {
        assert!(
            v["check"][key].as_f64().is_some_and(f64::is_finite),
            "{key}: {v}"
        );
    }
    let ops = v["ops"].as_object().unwrap();
    assert_eq!(ops.len(), 7);
    for (name, o) in ops {
        assert!(o["median_ms"].as_f64().unwrap() >= 0.0, "{name}");
        assert!(o["reps"].as_u64().unwrap() >= 2, "{name}");
    }
    for solve in [
        "estimate",
        "estimate_reference",
        "tracked_step",
        "tracked_step_history",
    ] {
        assert!(ops[solve]["products"].as_f64().unwrap() >= 1.0, "{solve}");
    }
    let lambda = v["check"]["sharpness"].as_f64().unwrap();
    assert_eq!(ops["estimate"]["value"].as_f64(), Some(lambda));

    let mut args = vec!["--json", "ops", "--ops", "loss,hvp"];
    args.extend(net);
    let v: Value = serde_json::from_str(&succeeded(&run(&args))).unwrap();
    let names: Vec<_> = v["ops"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(names, ["hvp", "loss"]);
    assert!(v["check"]["sharpness"].is_null() && v["check"]["vhv"].is_f64());

    let mut args = vec!["ops", "--ops", "hessian"];
    args.extend(net);
    let err = failed_with(&run(&args), 1);
    assert_contains(&err, &["hessian", "tracked_step"]);
}
