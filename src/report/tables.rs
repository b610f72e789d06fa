//! The layouts of a training run's streamed tables: `steps.csv` (one row per step) and
//! `eigs.csv` (one row per eigenvalue estimate). Readers find columns by name, so columns are
//! only ever added.

use super::CsvField;
use crate::train::{EigRecord, StepRecord};

/// `steps.csv`'s header.
pub const STEP_COLUMNS: [&str; 5] = [
    "step",
    "train_loss",
    "train_accuracy",
    "grad_norm",
    "t_step_ms",
];

/// A `steps.csv` row.
pub fn step_row(r: &StepRecord) -> [CsvField<'static>; 5] {
    [
        r.step.into(),
        r.loss.into(),
        r.accuracy.into(),
        r.grad_norm.into(),
        (r.seconds * 1e3).into(),
    ]
}

/// `eigs.csv`'s header for `k` tracked eigenvalues: `step`, `lambda_i`, `residual_i`,
/// `bound_i` (certified `λᵢ − θᵢ ≤ bound_i`, empty where not certified), `rho` (the gap estimate
/// the bounds assume), `strategy`, `history_only`, `status`, `products`, `iterations`,
/// `t_eig_ms` (cold check included), `t_products_ms` (of which in curvature products), and the cold check's `check` (`agree`, `disagree`, empty
/// when none ran), `check_lambda_1`, `check_lambda_next` (its `λ_{k+1}`) and `check_products`.
pub fn eig_columns(k: usize) -> Vec<String> {
    let mut cols = vec!["step".to_string()];
    for name in ["lambda", "residual", "bound"] {
        cols.extend((1..=k).map(|i| format!("{name}_{i}")));
    }
    cols.extend(
        [
            "rho",
            "strategy",
            "history_only",
            "status",
            "products",
            "iterations",
            "t_eig_ms",
            "t_products_ms",
            "check",
            "check_lambda_1",
            "check_lambda_next",
            "check_products",
        ]
        .map(String::from),
    );
    cols
}

/// An `eigs.csv` row for `k` tracked eigenvalues (cells beyond the record's pairs are empty).
pub fn eig_row(r: &EigRecord, k: usize) -> Vec<CsvField<'static>> {
    let mut row = vec![CsvField::from(r.step)];
    row.extend((0..k).map(|i| CsvField::from(r.values.get(i).copied())));
    row.extend((0..k).map(|i| CsvField::from(r.residuals.get(i).copied())));
    row.extend((0..k).map(|i| CsvField::from(r.bounds.get(i).copied().flatten())));
    let check = r.check.as_ref();
    row.extend([
        CsvField::from(r.rho),
        CsvField::from(r.strategy.name()),
        CsvField::from(r.history_only),
        CsvField::from(r.status.name()),
        CsvField::from(r.products),
        CsvField::from(r.iterations),
        CsvField::from(r.seconds * 1e3),
        CsvField::from(r.product_seconds * 1e3),
        CsvField::from(check.map(|c| if c.agrees { "agree" } else { "disagree" })),
        CsvField::from(check.and_then(|c| c.values.first().copied())),
        CsvField::from(check.and_then(|c| c.values.get(k).copied())),
        CsvField::from(check.map(|c| c.products)),
    ]);
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eig::{ColdCheck, Status, Strategy};

    #[test]
    fn an_eig_row_fills_every_column_of_its_header() {
        let rec = EigRecord {
            step: 7,
            values: vec![2.0, 1.5],
            residuals: vec![1e-3, 2e-3],
            bounds: vec![Some(1e-6), None],
            rho: Some(1.2),
            strategy: Strategy::History,
            history_only: true,
            check: Some(ColdCheck {
                values: vec![2.0, 1.5, 1.1],
                products: 30,
                agrees: true,
            }),
            status: Status::Converged,
            products: 3,
            iterations: 2,
            seconds: 0.5,
            product_seconds: 0.4,
        };
        let cols = eig_columns(2);
        let row = eig_row(&rec, 2);
        assert_eq!(cols.len(), row.len());
        let at = |name: &str| &row[cols.iter().position(|c| c == name).unwrap()];
        assert_eq!(*at("bound_1"), CsvField::F64(1e-6));
        assert_eq!(*at("bound_2"), CsvField::Empty);
        assert_eq!(*at("strategy"), CsvField::Str("history"));
        assert_eq!(*at("check"), CsvField::Str("agree"));
        assert_eq!(*at("check_lambda_next"), CsvField::F64(1.1));
        assert_eq!(*at("t_eig_ms"), CsvField::F64(500.0));
    }
}
