#!/usr/bin/env python3
"""Known-answer vectors for avnplan's imaging layer, made with OpenCV.

Writes tests/data/opencv/vectors.json (run from the repository root):

    pip install opencv-python-headless numpy
    python3 scripts/make_opencv_vectors.py

For a few fixed C-arm-like pinhole cameras (focal length = SID / pixel
spacing, 3000-5000 px; source 500-800 mm from a phantom near the world
origin; rotations from OpenCV's Rodrigues vectors) it records

* `projection`: P = K [R | t] (numpy), the 3x4 matrix handed to avnplan;
* `points_mm` and `pixels`: 3D points and their images from
  cv2.projectPoints (no lens distortion; projectPoints ignores skew, so the
  cameras used for it have zero skew);
* `decomposition`: K, R and the camera centre from
  cv2.decomposeProjectionMatrix applied to P (K scaled so that K[2][2] = 1;
  the centre dehomogenised from OpenCV's 4-vector).

Fixed inputs, no randomness: the file is reproducible.
"""
import json
import math
import os

import cv2
import numpy as np

CAMERAS = [
    # name, fx, fy, cx, cy, skew, rvec, tvec (mm)
    ("ap_like", 3333.3, 3333.3, 511.5, 511.5, 0.0, [0.0, 0.0, 0.0], [0.0, 0.0, 600.0]),
    ("oblique", 4000.0, 3950.0, 480.0, 530.0, 0.0, [0.35, -0.6, 0.1], [12.0, -8.0, 700.0]),
    ("cranial_lao", 3100.0, 3120.0, 700.0, 600.0, 0.0, [1.2, 0.4, -0.3], [-20.0, 15.0, 650.0]),
    ("lateral", 5000.0, 5000.0, 975.5, 975.5, 0.0, [0.0, math.pi / 2, 0.0], [5.0, 3.0, 800.0]),
    ("skewed", 3500.0, 3600.0, 512.0, 500.0, 2.5, [-0.4, 0.2, 2.9], [30.0, -25.0, 550.0]),
]


def points():
    """A 3x3x3 grid of fiducials, 40 mm pitch, plus a fixed irregular offset."""
    pts = []
    for i in range(27):
        x, y, z = i % 3, (i // 3) % 3, i // 9
        pts.append([40.0 * x - 40.0 + 0.7 * i, 40.0 * y - 40.0 - 0.3 * i, 40.0 * z - 40.0 + 0.5 * (i % 4)])
    return np.array(pts, dtype=np.float64)


def main():
    out = {
        "generator": "scripts/make_opencv_vectors.py",
        "opencv_version": cv2.__version__,
        "numpy_version": np.__version__,
        "cameras": [],
    }
    pts = points()
    for name, fx, fy, cx, cy, skew, rvec, tvec in CAMERAS:
        k = np.array([[fx, skew, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        rvec = np.array(rvec, dtype=np.float64).reshape(3, 1)
        tvec = np.array(tvec, dtype=np.float64).reshape(3, 1)
        r, _ = cv2.Rodrigues(rvec)
        p = k @ np.hstack([r, tvec])
        cam = {
            "name": name,
            "k": k.tolist(),
            "rvec": rvec.ravel().tolist(),
            "tvec": tvec.ravel().tolist(),
            "rotation": r.tolist(),
            "projection": p.tolist(),
        }
        if skew == 0.0:
            img, _ = cv2.projectPoints(pts, rvec, tvec, k, None)
            cam["points_mm"] = pts.tolist()
            cam["pixels"] = img.reshape(-1, 2).tolist()
        kd, rd, cd = cv2.decomposeProjectionMatrix(p)[:3]
        kd = kd / kd[2, 2]
        cd = (cd[:3] / cd[3]).ravel()
        cam["decomposition"] = {"k": kd.tolist(), "rotation": rd.tolist(), "center_mm": cd.tolist()}
        out["cameras"].append(cam)
    path = os.path.join("tests", "data", "opencv", "vectors.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path}: {len(out['cameras'])} cameras")


if __name__ == "__main__":
    main()
