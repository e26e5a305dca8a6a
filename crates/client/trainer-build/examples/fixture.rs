//! Builds test-fixture components for the sandbox (used by
//! `crates/enclave/sandbox/tests/fixtures/rebuild.sh`).
//!
//! ```text
//! fixture core IN.wasm OUT.wasm
//!     componentise a core module built with wit-bindgen (chiron-sdk guests)
//! fixture wat IN.wat WORLD OUT.wasm WIT...
//!     parse a WAT core module, embed the type information of WORLD (a world name in the last
//!     WIT path; earlier paths are its dependencies, pushed in order), componentise
//! ```

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run(&std::env::args().skip(1).collect::<Vec<_>>()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fixture: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    match args {
        [cmd, input, output] if cmd == "core" => {
            let core = std::fs::read(input).map_err(|e| format!("{input}: {e}"))?;
            let component = chiron_trainer_build::componentize(&core).map_err(|e| e.to_string())?;
            std::fs::write(output, component).map_err(|e| format!("{output}: {e}"))
        }
        [cmd, input, world, output, wit @ ..] if cmd == "wat" && !wit.is_empty() => {
            let mut core = wat::parse_file(input).map_err(|e| format!("{input}: {e}"))?;
            let mut resolve = wit_parser::Resolve::default();
            let mut main = None;
            for path in wit {
                let (pkg, _) = resolve
                    .push_path(Path::new(path))
                    .map_err(|e| format!("{path}: {e:#}"))?;
                main = Some(pkg);
            }
            let main = main.ok_or("no WIT path")?;
            let world = resolve
                .select_world(&[main], Some(world))
                .map_err(|e| format!("{world}: {e:#}"))?;
            wit_component::embed_component_metadata(
                &mut core,
                &resolve,
                world,
                wit_component::StringEncoding::UTF8,
            )
            .map_err(|e| format!("{e:#}"))?;
            let component = chiron_trainer_build::componentize(&core).map_err(|e| e.to_string())?;
            std::fs::write(output, component).map_err(|e| format!("{output}: {e}"))
        }
        _ => Err(
            "usage: fixture core IN.wasm OUT.wasm | fixture wat IN.wat WORLD OUT.wasm WIT..."
                .into(),
        ),
    }
}
