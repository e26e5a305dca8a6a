//! `chiron keygen`.

use std::path::Path;

use chiron_seal::MasterKey;

use super::CliResult;

/// Generates a master key into a new 0600 file and prints its public key id (never the key).
pub fn run(out: &Path) -> CliResult {
    let key = MasterKey::generate()?;
    key.write_new_file(out)?;
    println!(
        "wrote a new owner key to {} (key id {})",
        out.display(),
        key.id()
    );
    Ok(())
}
