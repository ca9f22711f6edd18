//! The locked dependencies against the RustSec advisory database (through the `rustsec` crate,
//! the library behind `cargo audit`): a crate version with a vulnerability advisory fails the
//! build. The database is the snapshot in `audit/advisory-db/` (see its README): CI reaches only
//! the package registries, so it cannot fetch a fresh copy.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn no_locked_crate_has_a_known_vulnerability() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let db = rustsec::Database::open(&root.join("audit/advisory-db")).unwrap();
    assert!(
        db.iter().count() > 500,
        "the advisory database snapshot looks empty"
    );
    // The check can fail: a lock file with a crate version known to be vulnerable is caught.
    let known_bad: rustsec::Lockfile = "version = 3\n\n[[package]]\nname = \"smallvec\"\n\
        version = \"0.6.9\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n"
        .parse()
        .unwrap();
    assert!(
        !db.vulnerabilities(&known_bad).is_empty(),
        "smallvec 0.6.9 (RUSTSEC-2019-0009) was not caught"
    );
    let lockfile = rustsec::Lockfile::load(root.join("Cargo.lock")).unwrap();
    let found: Vec<String> = db
        .vulnerabilities(&lockfile)
        .iter()
        .map(|v| {
            format!(
                "{} {}: {} {} (https://rustsec.org/advisories/{}.html)",
                v.package.name, v.package.version, v.advisory.id, v.advisory.title, v.advisory.id
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "locked crates with vulnerability advisories:\n{}",
        found.join("\n")
    );
}
