//! Fuzzes seal-then-open: the input describes a small valid dataset (shape, dtype, classes,
//! splits, chunk size, contents). It is sealed, then must open, verify, and give back every
//! record exactly, by single reads and batches. Then one byte of the sealed file, chosen by the
//! input, is changed: the damaged file must be refused by `open` or by `verify`.

#![no_main]

use chiron_fuzz::{fuzz_key, plan_from_bytes};
use chiron_seal::SealedDataset;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let plan = plan_from_bytes(data);
    let key = fuzz_key();
    let sealed = match plan.seal(&key, [0x5a; 16]) {
        Ok(s) => s,
        Err(e) => panic!("the writer refused a valid plan: {e}"),
    };
    let ds = match SealedDataset::open(sealed.clone(), &key) {
        Ok(ds) => ds,
        Err(e) => panic!("a freshly sealed file does not open: {e}"),
    };
    assert_eq!(ds.header().schema, plan.schema);
    match ds.verify(|_| {}) {
        Ok(report) => assert_eq!(report.records, plan.records.len() as u64),
        Err(e) => panic!("a freshly sealed file does not verify: {e}"),
    }
    let mut stream = 0usize;
    for (s, split) in plan.schema.splits.iter().enumerate() {
        let first = stream;
        for i in 0..split.records {
            let (features, label) = &plan.records[stream];
            match ds.record(s, i) {
                Ok(r) => {
                    assert_eq!(&r.features[..], &features[..], "features of record {i}");
                    assert_eq!(r.label, *label, "label of record {i}");
                }
                Err(e) => panic!("record {i} of split {s}: {e}"),
            }
            stream += 1;
        }
        let indices: Vec<u64> = (0..split.records).rev().collect();
        match ds.batch(s, &indices) {
            Ok(b) => {
                let want: Vec<u8> = plan.records[first..stream]
                    .iter()
                    .rev()
                    .flat_map(|(f, _)| f.iter().copied())
                    .collect();
                assert_eq!(&b.features[..], &want[..], "batch features of split {s}");
            }
            Err(e) => panic!("batch of split {s}: {e}"),
        }
    }

    // Tamper with one byte; position and mask come from the input's first bytes.
    let pos_seed = data.iter().fold(0usize, |acc, &b| {
        acc.wrapping_mul(131).wrapping_add(usize::from(b))
    });
    let pos = pos_seed % sealed.len();
    let mask = data.last().copied().filter(|&m| m != 0).unwrap_or(1);
    let mut damaged = sealed;
    damaged[pos] ^= mask;
    if let Ok(ds) = SealedDataset::open(damaged, &key) {
        assert!(
            ds.verify(|_| {}).is_err(),
            "a file with byte {pos} changed (xor {mask:#04x}) still verifies"
        );
    }
});
