//! Helpers shared by the integration tests.

use std::fmt;

/// An error with a fixed message, to use as a cancel cause.
#[derive(Debug)]
pub struct Named(pub &'static str);

impl fmt::Display for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Named {}
