//! Plain indexed triangle meshes.

use nalgebra::{Isometry3, Point3, Vector3};

use crate::error::{Error, Result};

/// Largest triangle count accepted for one mesh (contract limit).
pub const MAX_TRIANGLES: usize = 5_000_000;

/// An indexed triangle mesh, mm, counter-clockwise triangles seen from
/// outside (outward normals by the right-hand rule).
///
/// This is plain data: [`TriMesh::new`] checks indices and finiteness only.
/// Closedness and orientation are checked where a solid is needed
/// (see [`crate::geometry::BoneSurface`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TriMesh {
    /// Vertex positions, mm.
    pub vertices: Vec<Point3<f64>>,
    /// Triangles as indices into `vertices`.
    pub triangles: Vec<[u32; 3]>,
}

impl TriMesh {
    /// Builds a mesh, checking that indices are in range, coordinates are
    /// finite and the triangle count is within [`MAX_TRIANGLES`].
    ///
    /// # Errors
    /// [`Error::Mesh`] naming the first problem; [`Error::LimitExceeded`]
    /// above the triangle limit.
    pub fn new(vertices: Vec<Point3<f64>>, triangles: Vec<[u32; 3]>) -> Result<Self> {
        if triangles.len() > MAX_TRIANGLES {
            return Err(Error::LimitExceeded {
                what: "triangles".into(),
                limit: MAX_TRIANGLES,
                actual: triangles.len(),
            });
        }
        if triangles.is_empty() {
            return Err(Error::mesh("mesh", "has no triangles"));
        }
        if let Some(i) = vertices
            .iter()
            .position(|v| !(v.x.is_finite() && v.y.is_finite() && v.z.is_finite()))
        {
            return Err(Error::mesh("mesh", format!("vertex {i} is not finite")));
        }
        let n = vertices.len();
        if let Some(t) = triangles
            .iter()
            .position(|t| t.iter().any(|&i| i as usize >= n))
        {
            return Err(Error::mesh(
                "mesh",
                format!("triangle {t} refers to a missing vertex"),
            ));
        }
        Ok(Self {
            vertices,
            triangles,
        })
    }

    /// The axis-aligned box with opposite corners `min_mm` and `max_mm`
    /// (any frame, mm): 8 vertices, 12 triangles, outward winding. Vertex
    /// `i` has bit 0 of `i` choosing x, bit 1 y and bit 2 z (0 for `min_mm`,
    /// 1 for `max_mm`). Handy for test solids, forbidden boxes and lesion
    /// meshes.
    ///
    /// # Errors
    /// [`Error::Mesh`] when a coordinate is not finite or the box is flat or
    /// inverted on some axis (`max_mm` not above `min_mm`).
    ///
    /// # Example
    /// ```
    /// use approx::assert_relative_eq;
    /// use avnplan::geometry::TriMesh;
    /// use nalgebra::Point3;
    ///
    /// let m = TriMesh::cuboid(Point3::origin(), Point3::new(2.0, 3.0, 4.0)).unwrap();
    /// assert_eq!(m.triangles.len(), 12);
    /// assert_relative_eq!(m.signed_volume_mm3(), 24.0, epsilon = 1e-12);
    /// ```
    pub fn cuboid(min_mm: Point3<f64>, max_mm: Point3<f64>) -> Result<Self> {
        if !(0..3).all(|k| max_mm[k] - min_mm[k] > 0.0 && (max_mm[k] - min_mm[k]).is_finite()) {
            return Err(Error::mesh(
                "box",
                "needs finite corners with max above min on every axis",
            ));
        }
        let pick = |bit: bool, k: usize| if bit { max_mm[k] } else { min_mm[k] };
        let vertices = (0..8)
            .map(|i| {
                Point3::new(
                    pick(i & 1 == 1, 0),
                    pick(i & 2 == 2, 1),
                    pick(i & 4 == 4, 2),
                )
            })
            .collect();
        let triangles = vec![
            [0, 2, 1],
            [1, 2, 3],
            [4, 5, 6],
            [5, 7, 6],
            [0, 1, 4],
            [1, 5, 4],
            [2, 6, 3],
            [3, 6, 7],
            [0, 4, 2],
            [2, 4, 6],
            [1, 3, 5],
            [3, 7, 5],
        ];
        Self::new(vertices, triangles)
    }

    /// The three corners of triangle `i`.
    #[must_use]
    pub fn triangle(&self, i: usize) -> [Point3<f64>; 3] {
        let [a, b, c] = self.triangles[i];
        [
            self.vertices[a as usize],
            self.vertices[b as usize],
            self.vertices[c as usize],
        ]
    }

    /// Signed volume enclosed, mm^3 (positive for outward-oriented closed meshes).
    #[must_use]
    pub fn signed_volume_mm3(&self) -> f64 {
        // Sum of tetrahedra against a reference point (the first vertex) for accuracy.
        let o = self.vertices.first().map(|p| p.coords).unwrap_or_default();
        self.triangles
            .iter()
            .map(|&[a, b, c]| {
                let pa = self.vertices[a as usize].coords - o;
                let pb = self.vertices[b as usize].coords - o;
                let pc = self.vertices[c as usize].coords - o;
                pa.dot(&pb.cross(&pc))
            })
            .sum::<f64>()
            / 6.0
    }

    /// Total surface area, mm^2.
    #[must_use]
    pub fn area_mm2(&self) -> f64 {
        (0..self.triangles.len())
            .map(|i| {
                let [a, b, c] = self.triangle(i);
                (b - a).cross(&(c - a)).norm() * 0.5
            })
            .sum()
    }

    /// Axis-aligned bounding box `(min, max)`, mm.
    #[must_use]
    pub fn bounds_mm(&self) -> (Point3<f64>, Point3<f64>) {
        let mut lo = Point3::from(Vector3::repeat(f64::INFINITY));
        let mut hi = Point3::from(Vector3::repeat(f64::NEG_INFINITY));
        for v in &self.vertices {
            lo = lo.inf(v);
            hi = hi.sup(v);
        }
        (lo, hi)
    }

    /// The same mesh moved by a rigid map (`world_from_mesh`).
    #[must_use]
    pub fn transformed(&self, world_from_mesh: &Isometry3<f64>) -> Self {
        Self {
            vertices: self.vertices.iter().map(|v| world_from_mesh * v).collect(),
            triangles: self.triangles.clone(),
        }
    }

    /// Reverses every triangle's winding (flips an inside-out mesh).
    pub fn flip_orientation(&mut self) {
        for t in &mut self.triangles {
            t.swap(1, 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    pub(crate) fn unit_cube() -> TriMesh {
        TriMesh::cuboid(Point3::origin(), Point3::new(1.0, 1.0, 1.0)).unwrap()
    }

    #[test]
    fn cube_volume_and_area() {
        let m = unit_cube();
        assert_relative_eq!(m.signed_volume_mm3(), 1.0, epsilon = 1e-12);
        assert_relative_eq!(m.area_mm2(), 6.0, epsilon = 1e-12);
        let mut f = m.clone();
        f.flip_orientation();
        assert_relative_eq!(f.signed_volume_mm3(), -1.0, epsilon = 1e-12);
    }

    #[test]
    fn rejects_bad_indices_and_nan() {
        assert!(TriMesh::new(vec![Point3::origin()], vec![[0, 0, 1]]).is_err());
        assert!(TriMesh::new(vec![Point3::new(f64::NAN, 0.0, 0.0)], vec![[0, 0, 0]]).is_err());
        assert!(TriMesh::new(vec![], vec![]).is_err());
    }
}
