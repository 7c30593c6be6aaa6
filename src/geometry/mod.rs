//! Frame-free geometry: triangle meshes, spheres, ellipsoids, fits and the
//! bone-surface queries the planner is built on.
//!
//! Entry points: [`TriMesh`].

mod mesh;

pub use mesh::{TriMesh, MAX_TRIANGLES};
