//! What framegate reads from the servers it asks (etcd, other nodes, media servers): an
//! answer is read up to a bound, never further.

/// Why an answer was not read whole.
#[derive(Debug)]
pub enum Unread {
    /// It is longer than the bound.
    TooLong,
    /// The connection failed while reading it.
    Failed(reqwest::Error),
}

/// The body of `answer`, if it is at most `max` bytes.
pub async fn read_capped(mut answer: reqwest::Response, max: usize) -> Result<Vec<u8>, Unread> {
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(Unread::Failed)? {
        if body.len() + chunk.len() > max {
            return Err(Unread::TooLong);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &'static str) -> reqwest::Response {
        reqwest::Response::from(axum::http::Response::new(body))
    }

    #[tokio::test]
    async fn an_answer_is_read_up_to_its_bound_and_no_further() {
        let read = read_capped(answer("0123456789"), 10).await;
        assert_eq!(read.ok().as_deref(), Some(&b"0123456789"[..]));
        let read = read_capped(answer("0123456789a"), 10).await;
        assert!(matches!(read, Err(Unread::TooLong)));
    }
}
