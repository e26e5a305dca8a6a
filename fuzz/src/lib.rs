//! Shared pieces of the fuzz targets: the fixed fuzzing key, the seed datasets, and the decoder
//! that turns fuzzer bytes into a dataset for the round-trip target.
//!
//! Everything here uses only the public API of `chiron-seal` (plus the `#[doc(hidden)]`
//! `SealWriter::with_dataset_id`, for reproducible seeds).

#![forbid(unsafe_code)]

use chiron_seal::{Dtype, MIN_CHUNK_SIZE, MasterKey, Schema, SealWriter, Split};

/// Bytes of the master key every target and seed uses.
pub const FUZZ_KEY: [u8; 32] = [7; 32];

/// The master key every target and seed uses.
pub fn fuzz_key() -> MasterKey {
    MasterKey::from_bytes(FUZZ_KEY)
}

/// A dataset to seal: schema, chunk size, and records (features, label).
pub struct Plan {
    /// The declared schema.
    pub schema: Schema,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Records in storage order, split after split: feature bytes and label.
    pub records: Vec<(Vec<u8>, u32)>,
}

impl Plan {
    /// Seals the plan under `key` with a fixed dataset id, so the output is reproducible.
    /// Fails if the writer refuses the plan.
    pub fn seal(&self, key: &MasterKey, dataset_id: [u8; 16]) -> chiron_seal::Result<Vec<u8>> {
        let mut w = SealWriter::with_dataset_id(
            Vec::new(),
            key,
            self.schema.clone(),
            // Public names: the fuzz targets decode the header and compare names in the clear.
            chiron_seal::SealOptions {
                chunk_size: self.chunk_size,
                public_class_names: true,
            },
            dataset_id,
        )?;
        for (features, label) in &self.records {
            w.push(features, *label)?;
        }
        w.finish()
    }
}

/// Deterministic feature bytes for seeds: `n` elements of `dtype`, all finite.
fn pattern(dtype: Dtype, n: usize, salt: u32) -> Vec<u8> {
    match dtype {
        Dtype::U8 => (0..n)
            .map(|i| (i as u32).wrapping_mul(31).wrapping_add(salt) as u8)
            .collect(),
        Dtype::F32 => (0..n)
            .flat_map(|i| (((i as u32 + salt) % 255) as f32 / 255.0 - 0.5).to_le_bytes())
            .collect(),
    }
}

fn seed_plan(
    dtype: Dtype,
    shape: &[u32],
    classes: u32,
    named: bool,
    splits: &[(&str, u64)],
    chunk_size: u32,
) -> Plan {
    let schema = Schema {
        dtype,
        shape: shape.to_vec(),
        classes,
        class_names: if named {
            (0..classes).map(|c| format!("class {c}")).collect()
        } else {
            vec![]
        },
        splits: splits
            .iter()
            .map(|&(name, records)| Split {
                name: name.into(),
                records,
            })
            .collect(),
    };
    let elements = schema.elements() as usize;
    let records = (0..schema.total_records() as u32)
        .map(|r| (pattern(dtype, elements, r), r % classes))
        .collect();
    Plan {
        schema,
        chunk_size,
        records,
    }
}

/// Small valid sealed datasets under [`fuzz_key`], with names: one chunk, records spanning chunk
/// boundaries, f32 features, class names, several splits. Each stays well under 32 KiB.
pub fn seed_datasets() -> Vec<(&'static str, Vec<u8>)> {
    let cs = MIN_CHUNK_SIZE;
    let plans = [
        (
            "u8-one-chunk",
            seed_plan(Dtype::U8, &[1, 4, 4], 3, false, &[("train", 10)], cs),
        ),
        (
            "u8-mnist-shape-spanning",
            seed_plan(
                Dtype::U8,
                &[1, 28, 28],
                10,
                false,
                &[("train", 8), ("test", 3)],
                cs,
            ),
        ),
        (
            "f32-named-classes",
            seed_plan(
                Dtype::F32,
                &[3, 5],
                4,
                true,
                &[("train", 40), ("val", 7), ("test", 9)],
                cs,
            ),
        ),
        (
            "f32-rank4-one-record",
            seed_plan(Dtype::F32, &[2, 2, 3, 3], 2, false, &[("only", 1)], cs),
        ),
        (
            "u8-record-larger-than-chunk",
            seed_plan(Dtype::U8, &[3, 40, 40], 5, true, &[("train", 3)], cs),
        ),
    ];
    let key = fuzz_key();
    plans
        .into_iter()
        .enumerate()
        .filter_map(|(i, (name, plan))| {
            let id = [i as u8 + 1; 16];
            plan.seal(&key, id).ok().map(|bytes| (name, bytes))
        })
        .collect()
}

/// Reads fuzzer bytes front to back; past the end every read yields zero.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    /// Starts reading `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// The next byte, or 0 past the end.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// The next two bytes as a little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }
}

/// Turns arbitrary bytes into a valid dataset plan (valid by construction: the writer must
/// accept it), small enough that one execution stays fast: at most 48 records of at most
/// 512 elements, chunk sizes 4 to 16 KiB so records often straddle chunk boundaries.
pub fn plan_from_bytes(data: &[u8]) -> Plan {
    let mut b = Bytes::new(data);
    let dtype = if b.u8() & 1 == 0 {
        Dtype::U8
    } else {
        Dtype::F32
    };
    let rank = 1 + usize::from(b.u8() % 4);
    let mut shape = Vec::with_capacity(rank);
    let mut elements = 1u32;
    for _ in 0..rank {
        let max = (512 / elements).max(1);
        let d = 1 + u32::from(b.u16()) % max;
        elements *= d;
        shape.push(d);
    }
    let classes = 2 + u32::from(b.u8());
    let named = b.u8() & 1 == 1;
    let split_count = 1 + usize::from(b.u8() % 3);
    let mut splits = Vec::with_capacity(split_count);
    let mut total = 0u64;
    for s in 0..split_count {
        let records = 1 + u64::from(b.u8() % 16);
        total += records;
        splits.push(Split {
            name: ["train", "test", "val"][s].into(),
            records,
        });
    }
    let chunk_size = MIN_CHUNK_SIZE * (1 + u32::from(b.u8() % 4));
    let schema = Schema {
        dtype,
        shape,
        classes,
        class_names: if named {
            (0..classes).map(|c| format!("c{c}")).collect()
        } else {
            vec![]
        },
        splits,
    };
    // Feature bytes come from the rest of the input, cycled; f32 values are made finite.
    let fill = b.rest();
    let mut cursor = 0usize;
    let mut next = || {
        let v = if fill.is_empty() {
            0
        } else {
            fill[cursor % fill.len()]
        };
        cursor += 1;
        v
    };
    let records = (0..total)
        .map(|_| {
            let label = u32::from(next()) % classes;
            let features = match dtype {
                Dtype::U8 => (0..elements).map(|_| next()).collect(),
                Dtype::F32 => (0..elements)
                    .flat_map(|_| {
                        let raw = u32::from_le_bytes([next(), next(), next(), next()]);
                        let f = f32::from_bits(raw);
                        let f = if f.is_finite() { f } else { raw as f32 };
                        f.to_le_bytes()
                    })
                    .collect(),
            };
            (features, label)
        })
        .collect();
    Plan {
        schema,
        chunk_size,
        records,
    }
}
