//! Catching a panic where one piece of work must not take its thread down (a processor, a
//! model run, a stream's start), with the panic's message for the error it becomes.

/// Runs `f`; a panic comes back as `Err` with its message.
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(caught(|| 7), Ok(7));
        assert_eq!(
            caught(|| -> u8 { panic!("static text") }),
            Err("static text".into())
        );
        let n = 3;
        assert_eq!(
            caught(|| -> u8 { panic!("formatted {n}") }),
            Err("formatted 3".into())
        );
    }
}
