//! The hip's anatomy: the femoral head sphere and the head-neck frame, the
//! neck and shaft axes, the lesser trochanter, and the necrotic lesion.
//!
//! Entry points:
//! * [`FemurLandmarks::from_mesh`]: head, neck, shaft, lesser trochanter and
//!   the head-neck frame found automatically on a femur mesh (any pose);
//! * [`HeadNeckFrame`]: the frame the crate measures the head in (origin at
//!   the head centre, +x along the neck into the head, +z superior); the
//!   Kerboul arcs of the contract are angles in this frame (see
//!   [`frame`]);
//! * [`Lesion`]: ellipsoid, closed mesh or Kerboul lesion, with inside test,
//!   volume, head fraction and sampling.

mod femur;
pub mod frame;
mod lesion;

pub use femur::FemurLandmarks;
pub use frame::{Axis, HeadNeckFrame};
pub use lesion::{Lesion, LesionMesh, MAX_GRID_NODES, MAX_LESION_TRIANGLES};
mod model;
pub use model::{BoneSource, HipModel};
