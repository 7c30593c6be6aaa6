//! The crate's one error type.
//!
//! Every fallible public function returns [`Result<T>`]. Variants carry the
//! field path (contract style, e.g. `views[1].carm.sid_mm`) or the name of the
//! quantity, and what was expected, so that the command line can print the
//! one-line message the contract asks for (`FILE: FIELD: what is wrong`).
//!
//! A plan that finds no safe trajectory is *not* an error: it is an
//! [`Ok`] plan whose status is `no_safe_trajectory`.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in avnplan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value is outside its allowed range or otherwise invalid.
    #[error("{field}: {reason}")]
    Invalid {
        /// Field path or quantity name, e.g. `views[0].carm.sid_mm`.
        field: String,
        /// What was expected, e.g. `must be > 0`.
        reason: String,
    },
    /// Too few items were given (points, views, fiducials ...).
    #[error("{what}: need at least {required}, got {actual}")]
    TooFew {
        /// What was counted, e.g. `head_outline_px`.
        what: String,
        /// Minimum required.
        required: usize,
        /// Number given.
        actual: usize,
    },
    /// A documented size limit was exceeded.
    #[error("{what}: limit is {limit}, got {actual}")]
    LimitExceeded {
        /// What was counted, e.g. `triangles`.
        what: String,
        /// The documented limit.
        limit: usize,
        /// Number given.
        actual: usize,
    },
    /// A geometric configuration is degenerate (parallel rays, coplanar
    /// fiducials, a point behind the source ...).
    #[error("{what}: degenerate geometry: {reason}")]
    Degenerate {
        /// The quantity or field concerned.
        what: String,
        /// Why it is degenerate.
        reason: String,
    },
    /// A triangle mesh is unusable (open, inconsistently oriented, wrong units ...).
    #[error("{what}: invalid mesh: {reason}")]
    Mesh {
        /// Field path or file name.
        what: String,
        /// Why the mesh is unusable.
        reason: String,
    },
    /// An iterative solver did not converge.
    #[error("{what}: did not converge: {reason}")]
    NotConverged {
        /// What was being solved.
        what: String,
        /// Figures at the last iterate.
        reason: String,
    },
    /// A JSON document could not be parsed or does not match the contract.
    #[error("{field}: {reason}")]
    Json {
        /// Field path where parsing stopped (`.` for the document root).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Something in a DICOM file is missing or unsupported.
    #[error("{what}: {reason}")]
    Dicom {
        /// The file or tag concerned.
        what: String,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Degenerate`].
    pub fn degenerate(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Degenerate {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Mesh`].
    pub fn mesh(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Mesh {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::TooFew`].
    pub fn too_few(what: impl Into<String>, required: usize, actual: usize) -> Self {
        Error::TooFew {
            what: what.into(),
            required,
            actual,
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Returns the same error with `prefix.` put in front of its field path
    /// (used when a nested value is validated on its own, then placed in a file).
    #[must_use]
    pub fn in_field(self, prefix: &str) -> Self {
        let join = |f: String| {
            if f.is_empty() || f == "." {
                prefix.to_string()
            } else if f.starts_with('[') {
                format!("{prefix}{f}")
            } else {
                format!("{prefix}.{f}")
            }
        };
        match self {
            Error::Invalid { field, reason } => Error::Invalid {
                field: join(field),
                reason,
            },
            Error::TooFew {
                what,
                required,
                actual,
            } => Error::TooFew {
                what: join(what),
                required,
                actual,
            },
            Error::LimitExceeded {
                what,
                limit,
                actual,
            } => Error::LimitExceeded {
                what: join(what),
                limit,
                actual,
            },
            Error::Degenerate { what, reason } => Error::Degenerate {
                what: join(what),
                reason,
            },
            Error::Mesh { what, reason } => Error::Mesh {
                what: join(what),
                reason,
            },
            Error::NotConverged { what, reason } => Error::NotConverged {
                what: join(what),
                reason,
            },
            Error::Json { field, reason } => Error::Json {
                field: join(field),
                reason,
            },
            Error::Dicom { what, reason } => Error::Dicom {
                what: join(what),
                reason,
            },
            e @ Error::Io { .. } => e,
        }
    }
}

/// Checks that every component is finite; `field` names the value.
pub(crate) fn ensure_finite(field: &str, values: &[f64]) -> Result<()> {
    if values.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(Error::invalid(field, "must be finite (no NaN or infinity)"))
    }
}

/// Checks `value > 0` and finite.
pub(crate) fn ensure_positive(field: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(field, "must be a finite number > 0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_field_joins_paths() {
        let e = Error::invalid("sid_mm", "must be > sod_mm").in_field("views[1].carm");
        assert_eq!(e.to_string(), "views[1].carm.sid_mm: must be > sod_mm");
        let e = Error::too_few("[2]", 5, 3).in_field("views");
        assert_eq!(e.to_string(), "views[2]: need at least 5, got 3");
    }

    #[test]
    fn finite_and_positive_checks() {
        assert!(ensure_finite("x", &[1.0, 2.0]).is_ok());
        assert!(ensure_finite("x", &[1.0, f64::NAN]).is_err());
        assert!(ensure_positive("r", 1.0).is_ok());
        assert!(ensure_positive("r", 0.0).is_err());
        assert!(ensure_positive("r", f64::INFINITY).is_err());
    }
}
