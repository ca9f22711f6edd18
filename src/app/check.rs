//! `framegate check`: the config file as framegate would read it, and whether this machine can
//! meet it (hardware settings `on` need NVIDIA's decoder or encoder here).

use std::path::Path;

use crate::config::{self, Config};

/// Checks `path`; `Err` holds what to print: the file, line and field at fault, or the stream
/// whose setting this machine cannot meet.
pub fn check(path: &Path) -> Result<Config, String> {
    let config = config::load_file(path).map_err(|e| e.to_string())?;
    let mut machine = Vec::new();
    let wants_gpu = config.streams.iter().any(|s| {
        s.decoder.hardware == config::Hardware::On || s.encoder.hardware == config::Hardware::On
    });
    if wants_gpu {
        super::init_media().map_err(|e| format!("{e:#}"))?;
    } else {
        return Ok(config);
    }
    for s in &config.streams {
        if let Err(e) = crate::hardware::check_decoder(s.decoder.hardware) {
            machine.push(format!("stream `{}`: {e}", s.id()));
        }
        if let Err(e) = crate::hardware::use_hardware_encoder(s.encoder.hardware) {
            machine.push(format!("stream `{}`: {e}", s.id()));
        }
    }
    if machine.is_empty() {
        Ok(config)
    } else {
        Err(format!(
            "{}: this machine cannot run it:\n  {}",
            path.display(),
            machine.join("\n  ")
        ))
    }
}

/// `framegate check`: prints `<file>: ok (N streams)`, or what is wrong; the exit status.
pub fn check_and_report(path: &Path) -> std::process::ExitCode {
    match check(path) {
        Ok(c) => {
            println!("{}: ok ({} streams)", path.display(), c.streams.len());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
