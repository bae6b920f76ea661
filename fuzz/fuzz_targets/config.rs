//! Config parsing: any text as the TOML config. Never a panic — a bad config is a list of
//! problems naming their paths — and a config that loads is valid by its own validation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailgate_notify::config::{Config, Env};
use std::path::Path;

/// No secrets: the fuzzer must not read the process environment.
struct NoEnv;
impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml(text, Path::new("/nonexistent-fuzz-base"), &NoEnv) {
        Ok(config) => {
            let mut problems = Vec::new();
            config.validate(&mut problems);
            assert!(
                problems.is_empty(),
                "loaded config fails validation: {problems:?}"
            );
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error without problems");
            let _ = e.to_string();
        }
    }
});
