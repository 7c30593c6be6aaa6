//! The DICOM information file (`"schema": "avnplan.dicom-info/1"`), output
//! of `avnplan dicom-info`: what was read from one DICOM file.

use serde::{Deserialize, Serialize};

use super::case::CArmWire;

/// The schema string of a DICOM information file.
pub const DICOM_INFO_SCHEMA: &str = "avnplan.dicom-info/1";

/// What was read from one DICOM file.
///
/// `carm` is present only when the positioner geometry is complete; then
/// `missing` is empty, else it names the missing tags (DICOM keywords such
/// as `PositionerPrimaryAngle`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DicomInfoFile {
    /// Always [`DICOM_INFO_SCHEMA`].
    pub schema: String,
    /// The file as given on the command line.
    pub file: String,
    /// SOP Class UID (0008,0016).
    pub sop_class_uid: String,
    /// Transfer Syntax UID (0002,0010).
    pub transfer_syntax_uid: String,
    /// Rows (0028,0010).
    pub rows: u32,
    /// Columns (0028,0011).
    pub columns: u32,
    /// Number of Frames (0028,0008), 1 when absent.
    pub frames: u32,
    /// The geometry as contract form 3, when complete (isocentre at the
    /// world origin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carm: Option<CArmWire>,
    /// Keywords of the tags the geometry was read from, e.g.
    /// `DistanceSourceToDetector`.
    pub tags_used: Vec<String>,
    /// Keywords of the geometry tags that are missing.
    pub missing: Vec<String>,
}
