//! Range checks for the numbers of the config and the API: every number has a lower and an
//! upper bound, so that no value (`1e300`, `1e-30`, `NaN`) reaches a `Duration` or an
//! allocation unchecked. The error names the field and its range.

/// The longest any wait, timeout, retry delay or interval may be: one day.
pub const MAX_SECONDS: f64 = 86_400.0;

/// `Ok` when `v` is a finite number from `min` to `max`; the error names `field` and the range.
pub fn within(field: &str, v: f64, min: f64, max: f64) -> Result<(), String> {
    if v.is_finite() && v >= min && v <= max {
        Ok(())
    } else {
        Err(format!(
            "{field} = {} is out of range ({} to {})",
            show(v),
            show(min),
            show(max)
        ))
    }
}

/// A number as a person writes it: `2.5`, `86400`, `1e300`, `1e-30`.
fn show(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-4..1e9).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// A number of seconds from `min` to one day ([`MAX_SECONDS`]).
pub fn seconds(field: &str, v: f64, min: f64) -> Result<(), String> {
    within(field, v, min, MAX_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_outside_their_range_are_named() {
        assert!(within("x", 1.0, 0.0, 2.0).is_ok());
        assert_eq!(
            within("stall_timeout_s", 1e300, 0.1, 3600.0).unwrap_err(),
            "stall_timeout_s = 1e300 is out of range (0.1 to 3600)"
        );
        assert!(within("x", f64::NAN, 0.0, 1.0).is_err());
        assert!(within("x", f64::INFINITY, 0.0, f64::MAX).is_err());
        assert!(seconds("x", 1e-30, 0.001).is_err());
    }
}
