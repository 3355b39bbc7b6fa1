//! This node's own failures (its store, encoding) as gRPC statuses: the
//! peer can do nothing about them, so they are also logged here.

use tonic::Status;

/// `internal`, with the error's own words, logged on this side.
pub(crate) fn internal(error: impl std::fmt::Display) -> Status {
    tracing::warn!("answering a cluster call with an internal error: {error}");
    Status::internal(error.to_string())
}

pub(crate) trait OrInternal<T> {
    fn or_internal(self) -> Result<T, Status>;
}

impl<T, E: std::fmt::Display> OrInternal<T> for Result<T, E> {
    fn or_internal(self) -> Result<T, Status> {
        self.map_err(internal)
    }
}
