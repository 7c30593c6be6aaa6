//! Triangle-mesh files: STL (binary and ASCII), OBJ and PLY in, binary STL
//! and OBJ out, plus the checks a user-supplied bone mesh must pass.
//!
//! Entry points: [`load_mesh`] (read by extension, then
//! [`repair_and_check`]), [`repair_and_check`], [`write_stl`], [`write_obj`].
//!
//! Readers: `stl_io` (STL), `tobj` (OBJ; positions are read as f32), and
//! `ply-rs-bw` (PLY, ASCII or binary, `vertex` x/y/z and `face`
//! `vertex_indices`/`vertex_index` lists, polygons fan-triangulated).
//! Coordinates are taken to be millimetres; a mesh whose size only makes
//! sense in metres or centimetres is rejected with an error that says so.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use nalgebra::Point3;

use crate::error::{Error, Result};
use crate::geometry::TriMesh;

/// Smallest plausible bounding-box diagonal of a bone mesh in mm. A femoral
/// head alone is about 40-55 mm across (`domain.md`: head radius 20-28 mm),
/// so anything smaller is not a femur in mm.
pub const MIN_DIAGONAL_MM: f64 = 30.0;
/// Largest plausible bounding-box diagonal in mm (a whole femur is 400-500 mm
/// long; 2 m allows a whole leg or a generous scan frame).
pub const MAX_DIAGONAL_MM: f64 = 2000.0;
/// Below this bounding-box diagonal (mm) the mesh is reported as being in
/// metres (a whole femur is 0.4-0.5 m); between this and
/// [`MIN_DIAGONAL_MM`] it is reported as being in centimetres.
pub const METRES_BELOW_MM: f64 = 5.0;

/// Reads a triangle mesh by file extension (`.stl`, `.obj`, `.ply`, any
/// case), then runs [`repair_and_check`] on it (named by the file name).
///
/// Returns the mesh (mm) and the warnings of the repair.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Invalid`] for an
/// unsupported extension; [`Error::Mesh`] when the file cannot be parsed or
/// the mesh fails [`repair_and_check`].
///
/// # Example
/// ```
/// use avnplan::io::mesh::{load_mesh, write_stl};
/// use avnplan::geometry::TriMesh;
/// use nalgebra::Point3;
/// use approx::assert_relative_eq;
/// // A 40 mm tetrahedron, outward winding.
/// let v = vec![Point3::new(0.0, 0.0, 0.0), Point3::new(40.0, 0.0, 0.0),
///              Point3::new(0.0, 40.0, 0.0), Point3::new(0.0, 0.0, 40.0)];
/// let m = TriMesh::new(v, vec![[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])?;
/// let path = std::env::temp_dir().join("avnplan_doc_tet.stl");
/// write_stl(&path, &m)?;
/// let (back, warnings) = load_mesh(&path)?;
/// assert!(warnings.is_empty());
/// assert_relative_eq!(back.signed_volume_mm3(), 40.0f64.powi(3) / 6.0, epsilon = 1e-6);
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn load_mesh(path: &Path) -> Result<(TriMesh, Vec<String>)> {
    let name = path.display().to_string();
    let format = MeshFormat::from_path(path)?;
    let bytes = super::json::read_limited(path)?;
    load_mesh_bytes(&bytes, format, &name)
}

/// A mesh file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshFormat {
    /// STL, binary or ASCII (told apart by content).
    Stl,
    /// Wavefront OBJ.
    Obj,
    /// PLY, ASCII or binary.
    Ply,
}

impl MeshFormat {
    /// The format named by a path's extension (`.stl`, `.obj`, `.ply`, any
    /// case).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the path for any other extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        match ext.as_str() {
            "stl" => Ok(MeshFormat::Stl),
            "obj" => Ok(MeshFormat::Obj),
            "ply" => Ok(MeshFormat::Ply),
            _ => Err(Error::invalid(
                path.display().to_string(),
                format!("unsupported mesh file extension {ext:?}: expected .stl, .obj or .ply"),
            )),
        }
    }
}

/// Parses a mesh file held in memory (the bytes of a `.stl`, `.obj` or
/// `.ply` file), then runs [`repair_and_check`] on it; `name` names the mesh
/// in errors and warnings. [`load_mesh`] is this on a file's bytes.
///
/// Bounded: a binary STL whose header counts more than
/// [`MAX_TRIANGLES`](crate::geometry::MAX_TRIANGLES) triangles, or more than
/// the bytes hold, is refused before anything is allocated for it; every
/// format is refused above that many triangles after parsing.
///
/// # Errors
/// [`Error::LimitExceeded`] (`NAME.triangles`) above the triangle limit;
/// [`Error::Mesh`] when the bytes cannot be parsed or the mesh fails
/// [`repair_and_check`].
///
/// # Example
/// ```
/// use avnplan::io::mesh::{load_mesh_bytes, MeshFormat};
/// use approx::assert_relative_eq;
/// let obj = b"v 0 0 0\nv 40 0 0\nv 0 40 0\nv 0 0 40\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n";
/// let (m, warnings) = load_mesh_bytes(obj, MeshFormat::Obj, "tet.obj")?;
/// assert!(warnings.is_empty());
/// assert_relative_eq!(m.signed_volume_mm3(), 40.0f64.powi(3) / 6.0, epsilon = 1e-9);
/// # Ok::<(), avnplan::Error>(())
/// ```
pub fn load_mesh_bytes(
    bytes: &[u8],
    format: MeshFormat,
    name: &str,
) -> Result<(TriMesh, Vec<String>)> {
    let mesh = match format {
        MeshFormat::Stl => read_stl(bytes, name)?,
        MeshFormat::Obj => read_obj(bytes, name)?,
        MeshFormat::Ply => read_ply(bytes, name)?,
    };
    repair_and_check(mesh, name)
}

/// Size of a binary STL header (80 bytes of text, a little-endian `u32`
/// triangle count) and of one triangle record (normal, 3 vertices, 2 bytes).
const STL_HEADER_BYTES: usize = 84;
const STL_TRIANGLE_BYTES: usize = 50;

/// Whether `bytes` are a binary STL: the header's triangle count matches
/// the length exactly (many binary files start with `solid` too), or the
/// file does not start with `solid`.
fn stl_is_binary(bytes: &[u8]) -> bool {
    if bytes.len() >= STL_HEADER_BYTES {
        let count = u64::from(u32::from_le_bytes([
            bytes[80], bytes[81], bytes[82], bytes[83],
        ]));
        if STL_HEADER_BYTES as u64 + STL_TRIANGLE_BYTES as u64 * count == bytes.len() as u64 {
            return true;
        }
    }
    !bytes.trim_ascii_start().starts_with(b"solid")
}

/// Reads a binary STL as a triangle soup, refusing a header count above
/// the triangle limit or above what the bytes hold before allocating.
fn read_binary_stl(bytes: &[u8], name: &str) -> Result<TriMesh> {
    use crate::geometry::MAX_TRIANGLES;
    if bytes.len() < STL_HEADER_BYTES {
        return Err(Error::mesh(
            name,
            format!(
                "cannot parse STL: {} bytes, shorter than the 84-byte binary header",
                bytes.len()
            ),
        ));
    }
    let count = u32::from_le_bytes([bytes[80], bytes[81], bytes[82], bytes[83]]) as usize;
    if count > MAX_TRIANGLES {
        return Err(Error::LimitExceeded {
            what: format!("{name}.triangles"),
            limit: MAX_TRIANGLES,
            actual: count,
        });
    }
    let body = &bytes[STL_HEADER_BYTES..];
    if body.len() / STL_TRIANGLE_BYTES < count {
        return Err(Error::mesh(
            name,
            format!(
                "cannot parse STL: the binary header counts {count} triangles, the file holds {}",
                body.len() / STL_TRIANGLE_BYTES
            ),
        ));
    }
    let mut vertices = Vec::with_capacity(3 * count);
    let mut tris = Vec::with_capacity(count);
    for rec in body.chunks_exact(STL_TRIANGLE_BYTES).take(count) {
        let f = |o: usize| {
            f64::from(f32::from_le_bytes([
                rec[o],
                rec[o + 1],
                rec[o + 2],
                rec[o + 3],
            ]))
        };
        let b = vertices.len() as u32;
        for k in 0..3 {
            let o = 12 + 12 * k;
            vertices.push(Point3::new(f(o), f(o + 4), f(o + 8)));
        }
        tris.push([b, b + 1, b + 2]);
    }
    if tris.is_empty() {
        return Err(Error::mesh(name, "STL file has no triangles"));
    }
    raw_mesh(name, vertices, tris)
}

/// Builds a raw mesh (indices checked, no topology check) from parts.
fn raw_mesh(name: &str, vertices: Vec<Point3<f64>>, triangles: Vec<[u32; 3]>) -> Result<TriMesh> {
    TriMesh::new(vertices, triangles).map_err(|e| match e {
        Error::Mesh { reason, .. } => Error::mesh(name, reason),
        other => other.in_field(name),
    })
}

fn read_stl(bytes: &[u8], name: &str) -> Result<TriMesh> {
    if stl_is_binary(bytes) {
        return read_binary_stl(bytes, name);
    }
    let mut r = std::io::Cursor::new(bytes);
    let m = stl_io::read_stl(&mut r)
        .map_err(|e| Error::mesh(name, format!("cannot parse STL: {e}")))?;
    let vertices = m
        .vertices
        .iter()
        .map(|v| Point3::new(f64::from(v[0]), f64::from(v[1]), f64::from(v[2])))
        .collect();
    let mut tris = Vec::with_capacity(m.faces.len());
    for f in &m.faces {
        let t = f.vertices;
        let idx = |i: usize| {
            u32::try_from(i).map_err(|_| Error::mesh(name, "vertex index does not fit in 32 bits"))
        };
        tris.push([idx(t[0])?, idx(t[1])?, idx(t[2])?]);
    }
    raw_mesh(name, vertices, tris)
}

fn read_obj(bytes: &[u8], name: &str) -> Result<TriMesh> {
    let mut r = bytes;
    let opts = tobj::LoadOptions {
        triangulate: true,
        single_index: true,
        ignore_points: true,
        ignore_lines: true,
    };
    let (models, _materials) =
        tobj::load_obj_buf(&mut r, &opts, |_| Err(tobj::LoadError::OpenFileFailed))
            .map_err(|e| Error::mesh(name, format!("cannot parse OBJ: {e}")))?;
    let mut vertices = Vec::new();
    let mut tris = Vec::new();
    for m in &models {
        let base =
            u32::try_from(vertices.len()).map_err(|_| Error::mesh(name, "too many vertices"))?;
        for p in m.mesh.positions.chunks_exact(3) {
            vertices.push(Point3::new(
                f64::from(p[0]),
                f64::from(p[1]),
                f64::from(p[2]),
            ));
        }
        for t in m.mesh.indices.chunks_exact(3) {
            tris.push([base + t[0], base + t[1], base + t[2]]);
        }
    }
    if tris.is_empty() {
        return Err(Error::mesh(name, "OBJ file has no faces"));
    }
    raw_mesh(name, vertices, tris)
}

fn ply_scalar(p: &ply_rs_bw::ply::Property) -> Option<f64> {
    use ply_rs_bw::ply::Property as P;
    Some(match p {
        P::Char(v) => f64::from(*v),
        P::UChar(v) => f64::from(*v),
        P::Short(v) => f64::from(*v),
        P::UShort(v) => f64::from(*v),
        P::Int(v) => f64::from(*v),
        P::UInt(v) => f64::from(*v),
        P::Float(v) => f64::from(*v),
        P::Double(v) => *v,
        _ => return None,
    })
}

fn ply_list(p: &ply_rs_bw::ply::Property) -> Option<Vec<i64>> {
    use ply_rs_bw::ply::Property as P;
    Some(match p {
        P::ListChar(v) => v.iter().map(|&x| i64::from(x)).collect(),
        P::ListUChar(v) => v.iter().map(|&x| i64::from(x)).collect(),
        P::ListShort(v) => v.iter().map(|&x| i64::from(x)).collect(),
        P::ListUShort(v) => v.iter().map(|&x| i64::from(x)).collect(),
        P::ListInt(v) => v.iter().map(|&x| i64::from(x)).collect(),
        P::ListUInt(v) => v.iter().map(|&x| i64::from(x)).collect(),
        _ => return None,
    })
}

fn read_ply(bytes: &[u8], name: &str) -> Result<TriMesh> {
    use ply_rs_bw::parser::Parser;
    use ply_rs_bw::ply::DefaultElement;
    let mut r = bytes;
    let ply = Parser::<DefaultElement>::new()
        .read_ply(&mut r)
        .map_err(|e| Error::mesh(name, format!("cannot parse PLY: {e}")))?;
    let verts = ply
        .payload
        .get("vertex")
        .ok_or_else(|| Error::mesh(name, "PLY file has no `vertex` element"))?;
    let mut vertices = Vec::with_capacity(verts.len());
    for (i, v) in verts.iter().enumerate() {
        let c = |k: &str| {
            v.get(k)
                .and_then(ply_scalar)
                .ok_or_else(|| Error::mesh(name, format!("PLY vertex {i} has no numeric `{k}`")))
        };
        vertices.push(Point3::new(c("x")?, c("y")?, c("z")?));
    }
    let faces = ply
        .payload
        .get("face")
        .ok_or_else(|| Error::mesh(name, "PLY file has no `face` element"))?;
    let mut tris = Vec::with_capacity(faces.len());
    for (i, f) in faces.iter().enumerate() {
        let list = f
            .get("vertex_indices")
            .or_else(|| f.get("vertex_index"))
            .and_then(ply_list)
            .ok_or_else(|| {
                Error::mesh(
                    name,
                    format!("PLY face {i} has no integer `vertex_indices` list"),
                )
            })?;
        let idx: Vec<u32> = list
            .iter()
            .map(|&k| u32::try_from(k))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::mesh(name, format!("PLY face {i} has a negative index")))?;
        if idx.len() < 3 {
            return Err(Error::mesh(
                name,
                format!("PLY face {i} has fewer than 3 vertices"),
            ));
        }
        for k in 1..idx.len() - 1 {
            tris.push([idx[0], idx[k], idx[k + 1]]);
        }
    }
    raw_mesh(name, vertices, tris)
}

/// Makes a user's mesh usable as a bone surface, or says why it cannot be.
///
/// In order:
/// 1. non-finite coordinates (NaN, infinity) are an error;
/// 2. vertices with identical coordinates are merged (STL stores each
///    triangle's corners separately);
/// 3. zero-area triangles (see [`crate::geometry::BoneSurface::new`]) are
///    dropped, with a warning;
/// 4. only the largest connected component (by triangle count) is kept,
///    with a warning when there were several;
/// 5. the mesh must then be closed (every edge shared by exactly two
///    triangles) and consistently oriented, else an error;
/// 6. an inside-out mesh (signed volume < 0) is flipped, with a warning;
/// 7. the bounding-box diagonal must lie in
///    [[`MIN_DIAGONAL_MM`], [`MAX_DIAGONAL_MM`]]; below [`METRES_BELOW_MM`]
///    the error says the mesh looks like metres, otherwise centimetres.
///
/// `what` names the mesh (file name) in errors and warnings.
///
/// # Errors
/// [`Error::Mesh`] naming `what` and the problem.
pub fn repair_and_check(mesh: TriMesh, what: &str) -> Result<(TriMesh, Vec<String>)> {
    let mut warnings = Vec::new();
    if let Some(i) = mesh
        .vertices
        .iter()
        .position(|v| !(v.x.is_finite() && v.y.is_finite() && v.z.is_finite()))
    {
        return Err(Error::mesh(
            what,
            format!("vertex {i} is not finite (NaN or infinity)"),
        ));
    }
    let nv = mesh.vertices.len();
    if let Some(t) = mesh
        .triangles
        .iter()
        .position(|t| t.iter().any(|&i| i as usize >= nv))
    {
        return Err(Error::mesh(
            what,
            format!("triangle {t} refers to a missing vertex"),
        ));
    }
    // 2. Merge identical positions (-0.0 == 0.0).
    let key = |p: &Point3<f64>| [p.x, p.y, p.z].map(|c| if c == 0.0 { 0u64 } else { c.to_bits() });
    let mut map: HashMap<[u64; 3], u32> = HashMap::with_capacity(nv);
    let mut remap = Vec::with_capacity(nv);
    let mut verts: Vec<Point3<f64>> = Vec::with_capacity(nv);
    for p in &mesh.vertices {
        let id = *map.entry(key(p)).or_insert_with(|| {
            verts.push(*p);
            (verts.len() - 1) as u32
        });
        remap.push(id);
    }
    // 3. Drop zero-area triangles.
    let total = mesh.triangles.len();
    let mut tris: Vec<[u32; 3]> = Vec::with_capacity(total);
    for t in &mesh.triangles {
        let t = t.map(|i| remap[i as usize]);
        let c = t.map(|i| verts[i as usize]);
        if !crate::geometry::surface_is_degenerate(&c) {
            tris.push(t);
        }
    }
    if tris.len() < total {
        warnings.push(format!(
            "{what}: dropped {} zero-area triangles of {total}",
            total - tris.len()
        ));
    }
    if tris.is_empty() {
        return Err(Error::mesh(what, "has no triangles of non-zero area"));
    }
    // 4. Largest connected component (triangles sharing a vertex).
    let mut parent: Vec<u32> = (0..verts.len() as u32).collect();
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            let p = parent[parent[x as usize] as usize];
            parent[x as usize] = p;
            x = p;
        }
        x
    }
    for t in &tris {
        let r0 = find(&mut parent, t[0]);
        for &v in &t[1..] {
            let r = find(&mut parent, v);
            if r != r0 {
                parent[r as usize] = r0;
            }
        }
    }
    let roots: Vec<u32> = tris.iter().map(|t| find(&mut parent, t[0])).collect();
    let mut sizes: HashMap<u32, usize> = HashMap::new();
    for &r in &roots {
        *sizes.entry(r).or_insert(0) += 1;
    }
    if sizes.len() > 1 {
        // Largest; ties broken by the smallest root for determinism.
        let (&keep, &n_keep) = sizes
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .ok_or_else(|| Error::mesh(what, "has no triangles"))?;
        warnings.push(format!(
            "{what}: kept the largest of {} connected components ({n_keep} of {} triangles)",
            sizes.len(),
            tris.len()
        ));
        tris = tris
            .iter()
            .zip(&roots)
            .filter(|(_, &r)| r == keep)
            .map(|(t, _)| *t)
            .collect();
    }
    // Compact vertices.
    let mut used = vec![u32::MAX; verts.len()];
    let mut out_v = Vec::new();
    for t in &mut tris {
        for i in t.iter_mut() {
            if used[*i as usize] == u32::MAX {
                used[*i as usize] = out_v.len() as u32;
                out_v.push(verts[*i as usize]);
            }
            *i = used[*i as usize];
        }
    }
    let mut mesh = raw_mesh(what, out_v, tris)?;
    // 5. Closed and consistently oriented.
    crate::geometry::surface_check_closed_oriented(&mesh, what)?;
    // 6. Outward.
    let vol = mesh.signed_volume_mm3();
    if vol < 0.0 {
        mesh.flip_orientation();
        warnings.push(format!(
            "{what}: mesh was inside out (signed volume {vol:.3} mm^3); flipped all triangles"
        ));
    } else if vol.is_nan() || vol == 0.0 {
        return Err(Error::mesh(what, "encloses no volume"));
    }
    // 7. Plausible size in mm.
    let (lo, hi) = mesh.bounds_mm();
    let diag = (hi - lo).norm();
    if diag < METRES_BELOW_MM {
        return Err(Error::mesh(
            what,
            format!(
                "bounding-box diagonal is {diag:.4}: looks like metres, but coordinates must be \
                 in mm (scale by 1000)"
            ),
        ));
    }
    if diag < MIN_DIAGONAL_MM {
        return Err(Error::mesh(
            what,
            format!(
                "bounding-box diagonal is {diag:.3}: looks like centimetres, but coordinates must \
                 be in mm (scale by 10)"
            ),
        ));
    }
    if diag > MAX_DIAGONAL_MM {
        return Err(Error::mesh(
            what,
            format!(
                "bounding-box diagonal is {diag:.1} mm, more than {MAX_DIAGONAL_MM} mm: \
                 coordinates must be in mm"
            ),
        ));
    }
    Ok((mesh, warnings))
}

/// Writes a binary STL (coordinates rounded to f32, as the format requires;
/// facet normals from the winding).
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub fn write_stl(path: &Path, mesh: &TriMesh) -> Result<()> {
    let f = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(f);
    let v32 = |p: &Point3<f64>| stl_io::Vector::new([p.x as f32, p.y as f32, p.z as f32]);
    let tris: Vec<stl_io::Triangle> = (0..mesh.triangles.len())
        .map(|i| {
            let t = mesh.triangle(i);
            let n = (t[1] - t[0]).cross(&(t[2] - t[0]));
            let n = n.try_normalize(0.0).unwrap_or_default();
            stl_io::Triangle {
                normal: stl_io::Vector::new([n.x as f32, n.y as f32, n.z as f32]),
                vertices: [v32(&t[0]), v32(&t[1]), v32(&t[2])],
            }
        })
        .collect();
    stl_io::write_stl(&mut w, tris.iter()).map_err(|e| Error::io(path, e))?;
    w.flush().map_err(|e| Error::io(path, e))
}

/// Writes a Wavefront OBJ (`v x y z` with full f64 precision, `f i j k`
/// 1-based).
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub fn write_obj(path: &Path, mesh: &TriMesh) -> Result<()> {
    let f = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(f);
    let mut go = || -> std::io::Result<()> {
        writeln!(w, "# avnplan mesh, mm")?;
        for v in &mesh.vertices {
            writeln!(w, "v {} {} {}", v.x, v.y, v.z)?;
        }
        for t in &mesh.triangles {
            writeln!(w, "f {} {} {}", t[0] + 1, t[1] + 1, t[2] + 1)?;
        }
        w.flush()
    };
    go().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn cube(s: f64) -> TriMesh {
        TriMesh::cuboid(Point3::origin(), Point3::new(s, s, s)).unwrap()
    }

    /// Splits every triangle into its own three vertices (STL-like soup).
    fn soup(m: &TriMesh) -> TriMesh {
        let mut v = Vec::new();
        let mut t = Vec::new();
        for i in 0..m.triangles.len() {
            let c = m.triangle(i);
            let b = v.len() as u32;
            v.extend_from_slice(&c);
            t.push([b, b + 1, b + 2]);
        }
        TriMesh::new(v, t).unwrap()
    }

    #[test]
    fn soup_is_welded() {
        let (m, w) = repair_and_check(soup(&cube(40.0)), "cube").unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(m.vertices.len(), 8);
        assert_relative_eq!(m.signed_volume_mm3(), 64000.0, epsilon = 1e-6);
    }

    #[test]
    fn inside_out_is_flipped_with_warning() {
        let mut c = cube(40.0);
        c.flip_orientation();
        let (m, w) = repair_and_check(c, "cube").unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("inside out"), "{w:?}");
        assert!(m.signed_volume_mm3() > 0.0);
    }

    #[test]
    fn bad_meshes_are_named() {
        // Open.
        let mut c = cube(40.0);
        c.triangles.pop();
        let e = repair_and_check(c, "open.stl").unwrap_err().to_string();
        assert!(e.contains("open.stl") && e.contains("not closed"), "{e}");
        // Inconsistent winding of one triangle.
        let mut c = cube(40.0);
        c.triangles[3].swap(1, 2);
        let e = repair_and_check(c, "w.stl").unwrap_err().to_string();
        assert!(e.contains("inconsistently oriented"), "{e}");
        // Metres and centimetres.
        let e = repair_and_check(cube(0.4), "m.stl")
            .unwrap_err()
            .to_string();
        assert!(e.contains("metres"), "{e}");
        let e = repair_and_check(cube(4.0), "cm.stl")
            .unwrap_err()
            .to_string();
        assert!(e.contains("centimetres"), "{e}");
        // NaN.
        let mut c = cube(40.0);
        c.vertices[3].y = f64::NAN;
        let e = repair_and_check(c, "nan.stl").unwrap_err().to_string();
        assert!(e.contains("not finite"), "{e}");
    }

    #[test]
    fn extra_component_and_degenerate_dropped() {
        let a = cube(40.0);
        let b = cube(5.0);
        let mut v = a.vertices.clone();
        let off = v.len() as u32;
        v.extend(
            b.vertices
                .iter()
                .map(|p| p + nalgebra::Vector3::new(100.0, 0.0, 0.0)),
        );
        let mut t = a.triangles.clone();
        t.extend(b.triangles.iter().map(|t| t.map(|i| i + off)));
        // A zero-area triangle (three collinear vertices of the big cube's edge)
        v.push(Point3::new(20.0, 0.0, 0.0));
        let n = v.len() as u32 - 1;
        t.push([0, n, 1]);
        let (m, w) = repair_and_check(TriMesh::new(v, t).unwrap(), "two").unwrap();
        assert_eq!(m.triangles.len(), 12);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_relative_eq!(m.signed_volume_mm3(), 64000.0, epsilon = 1e-6);
    }
}
