//! `chiron keygen`.

use std::path::Path;

use chiron_seal::MasterKey;

use super::CliResult;
use crate::ui::outln;

/// Generates a master key into a new 0600 file and prints its public key id (never the key).
pub fn run(out: &Path) -> CliResult {
    let key = MasterKey::generate()?;
    key.write_new_file(out)?;
    outln!(
        "wrote a new owner key to {} (key id {})",
        out.display(),
        key.id()?
    );
    Ok(())
}

/// Reads the owner's key file at `path` (a `--key` argument). A folder is refused as such: the
/// key crate would otherwise report a folder's mode or size as if it were a broken key file.
pub fn read_key(path: &Path) -> CliResult<MasterKey> {
    if path.is_dir() {
        return Err(format!("{} is a directory, not a key file", path.display()).into());
    }
    Ok(MasterKey::read_file(path)?)
}
