//! Deterministic train/test split of a single-split source.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::{Dataset, Error, Result, SplitData};

/// Moves `round(n × test_fraction)` records, picked by a seeded permutation, into split `test`
/// and the rest into `train`; both keep the source's record order. The permutation is a
/// Fisher–Yates shuffle driven by ChaCha8 seeded from `seed` with `seed_from_u64` (a stream the
/// rand project keeps value-stable), so a seed names the same split on every machine and version.
pub fn by_fraction(dataset: Dataset, test_fraction: f64, seed: u64) -> Result<Dataset> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::Invalid(format!(
            "--test-fraction must be strictly between 0 and 1, is {test_fraction}"
        )));
    }
    let [source] = <[SplitData; 1]>::try_from(dataset.splits.clone()).map_err(|s| {
        Error::Invalid(format!(
            "--test-fraction needs a source with one split; this one already has {} ({})",
            s.len(),
            s.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let n = source.labels.len();
    let n_test = ((n as f64) * test_fraction).round() as usize;
    if n_test == 0 || n_test == n {
        return Err(Error::Invalid(format!(
            "--test-fraction {test_fraction} of {n} records leaves an empty split"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut is_test = vec![false; n];
    for &i in &order[..n_test] {
        is_test[i] = true;
    }
    let fb = dataset.feature_bytes();
    let mut train = SplitData {
        name: "train".into(),
        features: Vec::with_capacity(fb * (n - n_test)),
        labels: Vec::with_capacity(n - n_test),
    };
    let mut test = SplitData {
        name: "test".into(),
        features: Vec::with_capacity(fb * n_test),
        labels: Vec::with_capacity(n_test),
    };
    for (i, (features, &label)) in source
        .features
        .chunks_exact(fb)
        .zip(&source.labels)
        .enumerate()
    {
        let dst = if is_test[i] { &mut test } else { &mut train };
        dst.features.extend_from_slice(features);
        dst.labels.push(label);
    }
    Ok(Dataset {
        splits: vec![train, test],
        ..dataset
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chiron_seal::Dtype;

    fn tiny(n: usize) -> Dataset {
        Dataset {
            dtype: Dtype::U8,
            shape: vec![1],
            classes: 256,
            class_names: vec![],
            splits: vec![SplitData {
                name: "all".into(),
                features: (0..n).map(|i| i as u8).collect(),
                labels: (0..n).map(|i| i as u32).collect(),
            }],
        }
    }

    #[test]
    fn split_is_deterministic_complete_and_disjoint() {
        let a = by_fraction(tiny(200), 0.25, 7).unwrap();
        let b = by_fraction(tiny(200), 0.25, 7).unwrap();
        let c = by_fraction(tiny(200), 0.25, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.splits[1].labels, c.splits[1].labels);
        assert_eq!(a.splits[1].labels.len(), 50);
        let mut all: Vec<u32> = a.splits.iter().flat_map(|s| s.labels.clone()).collect();
        all.sort();
        assert_eq!(all, (0..200).collect::<Vec<_>>());
        // Features travel with their labels and keep source order within a split.
        for s in &a.splits {
            assert!(s.labels.windows(2).all(|w| w[0] < w[1]));
            assert!(
                s.features
                    .iter()
                    .zip(&s.labels)
                    .all(|(&f, &l)| u32::from(f) == l)
            );
        }
    }

    #[test]
    fn bad_fractions_and_multi_split_sources_are_refused() {
        for f in [0.0, 1.0, -0.5, f64::NAN, 0.0001] {
            assert!(by_fraction(tiny(100), f, 1).is_err(), "{f}");
        }
        let mut two = by_fraction(tiny(100), 0.5, 1).unwrap();
        two.splits[0].name = "a".into();
        let err = by_fraction(two, 0.5, 1).unwrap_err().to_string();
        assert!(err.contains("already has 2"), "{err}");
    }
}
