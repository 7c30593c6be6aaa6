//! Frame-free geometry: triangle meshes, spheres, ellipsoids, fits and the
//! bone-surface queries the planner is built on.
//!
//! Entry points: [`TriMesh`], [`Sphere`], [`Ellipsoid`].

mod ellipsoid;
mod mesh;
mod sphere;

pub use ellipsoid::Ellipsoid;
pub use mesh::{TriMesh, MAX_TRIANGLES};
pub use sphere::Sphere;
mod fit;
pub(crate) use fit::sorted_eigen;
pub use fit::{fit_circle_2d, fit_line, fit_sphere, Axis};
