//! Files in and out: contract v1 wire types (JSON) and mesh files.
//!
//! Entry points:
//!
//! * [`mesh`]: triangle meshes from STL (binary and ASCII), OBJ and PLY
//!   ([`mesh::load_mesh`]), the checks a user's bone mesh must pass
//!   ([`mesh::repair_and_check`]: closed, consistently oriented, outward,
//!   no NaN or zero-area triangles, plausible size in mm), and writers
//!   ([`mesh::write_stl`], [`mesh::write_obj`]).

pub mod mesh;
