//! One calibrated C-arm view: the pixel frame, the 3x4 projection, the DICOM
//! XA positioner geometry, fiducial calibration and image distortion.
//!
//! Entry points: [`Projection`], [`View`], [`CArm`].

mod carm;
mod projection;
mod view;

pub use carm::{angles_for_detector_direction, detector_direction, CArm, DetectorGeometry};
pub use projection::{Projection, Ray, MIN_DEPTH_MM};
pub use view::{Annotations, View};
