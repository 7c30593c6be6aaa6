//! Contract v1 wire types (JSON) and their conversion to the domain types.
//!
//! The files of `CONTRACT.md` and where their types live:
//!
//! | file | schema | module | direction |
//! |---|---|---|---|
//! | case | `avnplan.case/1` | [`case`] | input; [`case::load_case`] -> [`crate::Case`] |
//! | plan | `avnplan.plan/1` | [`plan`] | output of `plan`, input of `check` |
//! | model | `avnplan.model/1` | [`model`] | output of `reconstruct` |
//! | needle, check | `avnplan.needle/1`, `avnplan.check/1` | [`needle`] | input / output of `check` |
//! | registration | `avnplan.registration/1` | [`registration`] | output of `register` |
//! | dicom info | `avnplan.dicom-info/1` | [`dicom_info`] | output of `dicom-info` ([`dicom::DicomView::info`]) |
//! | DICOM images | Part 10 files (XA, RF; DX/CR with a calibration) | [`dicom`] | input: case form 4 ([`dicom::DicomView`]); output: [`dicom::write_xa_dicom`] |
//! | fiducials, calibration | `avnplan.fiducials/1`, `avnplan.calibration/1` | [`fiducials`] | input / output of `calibrate` ([`fiducials::calibrate_file`]) |
//! | meshes | STL (binary, ASCII), OBJ, PLY | [`mesh`] | input: [`mesh::load_mesh`] (checked and repaired by [`mesh::repair_and_check`]); output: [`mesh::write_stl`], [`mesh::write_obj`] |
//!
//! [`json`] holds the strict reader every input goes through (byte-order
//! mark, invalid UTF-8, duplicate keys, `null`, unknown fields, the 1 GiB
//! limit, field paths in errors), the deterministic finite-only writer, and
//! [`json::one_line_error`], the command line's `FILE: FIELD: what is wrong`.
//!
//! # Rules for every wire type
//!
//! * Input types are `#[serde(deny_unknown_fields)]` and never use
//!   `flatten`; the plan file alone ignores unknown fields (plans may come
//!   from a newer version), as the contract asks for `check`.
//! * `null` is refused in every input: an optional field is left out.
//! * Fields the contract does not mark optional are required.
//! * Optional output fields are left out when absent, never `null`; every
//!   number written is finite ([`json::to_json_string`] refuses otherwise).
//!
//! # The crate's optional additions to contract v1
//!
//! All optional; files without them are plain contract v1.
//!
//! * case, top level: `annotation_noise_px` (default 1.0, >= 0): the
//!   one-sigma annotation noise, px, that the planner's plans must be
//!   robust to (the contract's "annotation noise of 1 px").
//! * case, `constraints.max_breach_probability` (in [0, 1]): the largest
//!   acceptable probability of a breach (rules 1-5 of the safety definition
//!   broken on the bone) per trajectory under that noise, as estimated by
//!   [`crate::uncertainty`]; trajectories above it are rejected
//!   (`breach_probability` in `reasons`).
//! * case, `lesion.mesh.frame` (`"world"` default, or `"own"`), as the
//!   contract's `register` section describes.
//! * case, `views[i].distortion`: `{ "model", "degree", "center_px",
//!   "scale_px", "coeffs_u", "coeffs_v" }`, image distortion of that view
//!   ([`case::DistortionWire`]).
//! * plan, per trajectory: `breach_probability` (in [0, 1]) and
//!   `clearance_p05_mm` (5th percentile of `min_clearance_mm` under the
//!   annotation noise); plan level: `entry_zone_rule` (which rule placed
//!   the entry zone) and `recommended_margin_mm` (see [`crate::uncertainty`]).
//! * check: `entry_offset_mm` is left out when the needle's axis does not
//!   cross the outer bone surface.
//! * model: `neck_axis`, `shaft_axis` and `lesion` are left out when the
//!   annotations do not allow them to be reconstructed.

pub mod case;
pub mod dicom;
pub mod dicom_info;
pub mod json;
pub mod mesh;
pub mod model;
pub mod needle;
pub mod plan;
pub mod registration;

pub use case::{case_to_file, load_case, CaseFile};
pub use json::{from_json_bytes, one_line_error, read_json, to_json_string, write_json_atomic};
pub use plan::{load_plan, PlanFile};

pub mod fiducials;
