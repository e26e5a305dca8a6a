//! `chiron predict`: the owner's black-box queries. Inputs are images (PNG, JPEG: one record
//! each, channels first), CSV files (one record per row, numbers only, no header) or NumPy
//! `.npy` arrays (`[N, ...]`: N records). The enclave checks them against the job's record
//! shape; the answer is shaped by the job's output policy.

use std::path::{Path, PathBuf};

use chiron_connect::Settings;
use chiron_seal::Dtype;
use clap::Args;

use super::CliResult;
use super::service::{block_on, predict, print_predictions, token};

/// Arguments of `chiron predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// Connection settings (TOML; see docs/config/client.toml).
    #[arg(long)]
    connect: PathBuf,
    /// The job id.
    #[arg(long)]
    job: String,
    /// The owner's token file.
    #[arg(long)]
    token_file: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Inputs per request.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Input files: images, .csv or .npy.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

/// Runs `chiron predict`.
pub fn run(args: &PredictArgs) -> CliResult {
    let mut names = Vec::new();
    let mut values = Vec::new();
    let mut per_record: Option<usize> = None;
    for path in &args.inputs {
        let (records, v) = read_input(path)?;
        let per = v.len() / records.max(1);
        match per_record {
            None => per_record = Some(per),
            Some(p) if p != per => {
                return Err(format!(
                    "{}: records of {per} values, but earlier inputs have {p}",
                    path.display()
                )
                .into());
            }
            Some(_) => {}
        }
        if records == 1 {
            names.push(path.display().to_string());
        } else {
            names.extend((0..records).map(|i| format!("{}[{i}]", path.display())));
        }
        values.extend(v);
    }
    let settings = Settings::load(&args.connect)?;
    let token = token(&args.token_file)?;
    let predictions = block_on(predict(
        &settings,
        &args.job,
        &token,
        &values,
        names.len(),
        args.batch,
    ))??;
    print_predictions(&names, &predictions, args.json);
    Ok(())
}

/// Records and their values (as f32) from one input file.
fn read_input(path: &Path) -> CliResult<(usize, Vec<f32>)> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "npy" => {
            let (dtype, dims, bytes) = chiron_data::npy::read_features(path)?;
            let n = dims.first().copied().unwrap_or(0) as usize;
            Ok((n, to_f32(dtype, &bytes)))
        }
        "csv" => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_path(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut values = Vec::new();
            let mut rows = 0;
            for (i, record) in reader.records().enumerate() {
                let record = record.map_err(|e| format!("{}: {e}", path.display()))?;
                for cell in &record {
                    let v: f32 = cell.trim().parse().map_err(|_| {
                        format!(
                            "{}: row {} has a cell that is not a number",
                            path.display(),
                            i + 1
                        )
                    })?;
                    values.push(v);
                }
                rows += 1;
            }
            Ok((rows, values))
        }
        _ => {
            let bytes = chiron_data::images::load(path, &mut None)?;
            Ok((1, bytes.iter().map(|&b| f32::from(b)).collect()))
        }
    }
}

fn to_f32(dtype: Dtype, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        Dtype::U8 => bytes.iter().map(|&b| f32::from(b)).collect(),
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}
