//! One calibrated C-arm view: the pixel frame, the 3x4 projection, the DICOM
//! XA positioner geometry, fiducial calibration and image distortion.
//!
//! Entry points: [`Projection`] (project, back-project,
//! [`Projection::decompose`] into [`Intrinsics`] and [`Pose`]), [`View`],
//! [`CArm`] (DICOM XA form; the convention is pinned in the `carm` docs),
//! [`calibrate`] (DLT + Levenberg-Marquardt from fiducials) and
//! [`PolynomialDistortion`] (image-intensifier dewarping, the case file's
//! `distortion` field: [`DistortionParams`]).

mod calibration;
mod carm;
mod decompose;
pub mod distortion;
mod projection;
mod view;

pub use calibration::{
    calibrate, calibrate_with, dlt, Calibration, CalibrationOptions, DEGENERACY_RATIO,
    MIN_FIDUCIALS,
};
pub use carm::{angles_for_detector_direction, detector_direction, CArm, DetectorGeometry};
pub use decompose::{Intrinsics, Pose};
pub use distortion::{DistortionFit, DistortionParams, PolynomialDistortion};
pub use projection::{Projection, Ray, MIN_DEPTH_MM};
pub use view::{Annotations, View};
