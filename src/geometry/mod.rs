//! Frame-free geometry: triangle meshes, spheres, ellipsoids, fits and the
//! bone-surface queries the planner is built on.
//!
//! Entry points: [`TriMesh`], [`Sphere`], [`Ellipsoid`].
//!
//! Bone-surface queries (the planner's hot path): [`BoneSurface`] (inside test,
//! signed distance, closest point, rays, exact segment distance and the
//! clearance decision), built on the exact primitives
//! [`closest_point_on_triangle`], [`segment_triangle_distance_sq`] and
//! [`segment_intersects_triangle`].

mod bvh;
mod distance;
mod ellipsoid;
pub(crate) mod fit;
mod implicit;
mod mesh;
mod sphere;
mod surface;

pub use distance::{
    closest_point_on_triangle, segment_intersects_triangle, segment_triangle_distance_sq,
};
pub use ellipsoid::Ellipsoid;
pub(crate) use fit::sorted_eigen;
pub use fit::{fit_circle_2d, fit_line, fit_sphere, Axis};
pub use implicit::{mesh_implicit, MAX_IMPLICIT_GRID_POINTS};
pub use mesh::{TriMesh, MAX_TRIANGLES};
pub use sphere::Sphere;
pub(crate) use surface::Band as SurfaceBand;
pub(crate) use surface::{
    check_closed_oriented as surface_check_closed_oriented, is_degenerate as surface_is_degenerate,
};
pub use surface::{BoneSurface, RayHit, SurfacePoint};
