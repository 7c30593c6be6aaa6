//! Contract v1 wire types (JSON) and their conversion to domain types.
//!
//! Every input type is `#[serde(deny_unknown_fields)]`, checks its `schema`
//! string and reports errors with the contract's field path
//! (`points[3].px`).
//!
//! | module | file |
//! |---|---|
//! | [`fiducials`] | `avnplan.fiducials/1` in, `avnplan.calibration/1` out (`avnplan calibrate`): [`fiducials::parse_fiducials`], [`fiducials::calibrate_file`] |
//!
//! The `distortion` field of a view is [`crate::imaging::DistortionParams`].

pub mod fiducials;
