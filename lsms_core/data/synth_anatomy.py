"""Synthetic CT anatomy: the case's geometry (slice depth, body and liver units), the random ribs, bowel and
liver vessels, the liver's implicit field, its big vessels and its Couinaud segments.

Part of the synthetic CT generator (``lsms_core.data.synth``, whose docstring describes a case).
"""

from __future__ import annotations

import math

import numpy as np

from lsms_core.data.synth_labels import AIR, HEPATIC_VEIN, LIVER, PORTAL_VEIN


def _smin(a: np.ndarray, b: np.ndarray, k: float = 10.0) -> np.ndarray:
    """Smooth minimum of two implicit fields (a soft union that gives anatomical, not geometric, joins)."""
    m = np.minimum(a, b)
    return m - np.log1p(np.exp(-k * np.abs(a - b))) / k


class _Anatomy:
    """The anatomy part of ``_CaseModel`` (a mixin: the case's parameters are drawn in its ``__init__``)."""

    # ------------------------------------------------------------------ geometry helpers
    def z_of(self, k: int) -> float:
        return self.origin_z + k * self.th

    def t_of(self, z: float) -> float:
        return (self.z_dome - z) / self.L

    def uv_to_xy(self, u: float, v: float) -> tuple[float, float]:
        return self.cx + u * self.ai, self.cy + v * self.bi

    def _draw_ribs(self, rng) -> list[tuple]:
        ribs = []
        base = [-55, -25, 5, 35, 62, 88]  # degrees from patient-left lateral, + = posterior
        for side in (-1, 1):
            for j, a0 in enumerate(base):
                ribs.append((side, (a0 + rng.uniform(-8, 8)) * np.pi / 180, rng.uniform(0.25, 0.5),
                             0.55 + 0.12 * j + rng.uniform(-0.1, 0.1), rng.uniform(6, 13), rng.uniform(2.8, 4.2)))
        return ribs

    def _draw_bowel(self, rng) -> list[tuple]:
        """3D tube segments: (A xyz, B xyz, radius, kind) with kind colon | small."""
        tubes = []
        zL = lambda t: self.z_dome - t * self.L  # noqa: E731
        # hepatic flexure (patient right, under the liver tip), splenic flexure (left, high), transverse colon
        for u, v, t0, t1, r in ((-0.55, -0.2, 0.75, 1.25, rng.uniform(18, 25)),
                                (0.62, -0.05, 0.35, 0.95, rng.uniform(16, 22))):
            x, y = self.uv_to_xy(u, v)
            tubes.append(((x, y, zL(t0)), (x + rng.uniform(-15, 15), y + rng.uniform(-15, 15), zL(t1)), r, "colon"))
        xa, ya = self.uv_to_xy(-0.5, -0.55)
        xb, yb = self.uv_to_xy(0.55, -0.5)
        zt = zL(rng.uniform(0.85, 1.05))
        tubes.append(((xa, ya, zt), (xb, yb, zt + rng.uniform(-15, 15)), rng.uniform(17, 24), "colon"))
        # Small bowel and jejunal loops fill the anterior and left abdomen below the stomach; a thin patient
        # has more of them per unit of fat than an obese one (fewer visible fat gaps).
        for _ in range(int(rng.integers(22, 34))):
            u, v = rng.uniform(-0.45, 0.75), rng.uniform(-0.85, 0.35)
            x, y = self.uv_to_xy(u, v)
            t = rng.uniform(0.25, 1.3)
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            ln = rng.uniform(20, 60)
            tubes.append(((x, y, zL(t)), (x + d[0] * ln, y + d[1] * ln, zL(t) + d[2] * ln), rng.uniform(8, 13), "small"))
        return tubes

    def _draw_liver_vessels(self, rng) -> list[tuple]:
        """Intrahepatic vessels as branching trees of 3D tubes: portal branches fanning out from the hilum,
        hepatic veins draining towards the IVC, each tapering and forking towards the periphery."""
        out: list[tuple] = []
        ix, iy = self.ivc
        hilum = (ix - 4, iy - 26, self.z_dome - self.t_portal * self.L)
        confluence = (ix, iy, self.z_dome - 0.12 * self.L)

        def grow(start, target, radius, kind, depth):
            a = np.asarray(start, float)
            b = np.asarray(target, float)
            n_seg = 3
            for j in range(n_seg):
                end = a + (b - a) / (n_seg - j) + rng.normal(0, 5, 3)
                out.append((tuple(a), tuple(end), radius, kind))
                if depth > 0 and rng.uniform() < 0.8:  # a side branch from this node
                    d = rng.normal(size=3)
                    d[2] *= 0.6
                    d /= np.linalg.norm(d)
                    grow(end, end + d * rng.uniform(18, 35), radius * 0.6, kind, depth - 1)
                a = end
                radius = max(1.2, radius * 0.78)

        for i in range(int(rng.integers(8, 13))):
            kind = PORTAL_VEIN if i % 2 == 0 else HEPATIC_VEIN
            t = float(np.clip(self.t_portal + rng.normal(0, 0.18), 0.08, 0.9)) if kind == PORTAL_VEIN \
                else rng.uniform(0.1, 0.75)
            p = self._liver_point(rng, t, 0.15)
            if p is None:
                continue
            x, y = self.uv_to_xy(*p)
            root = hilum if kind == PORTAL_VEIN else confluence
            grow(root, (x, y, self.z_dome - t * self.L), rng.uniform(3.5, 5.0), kind, 2)
        return out

    def _liver_point(self, rng, t: float, margin: float = 0.0) -> tuple[float, float]:
        for _ in range(200):
            u, v = rng.uniform(-1.0, 0.7), rng.uniform(-1.0, 0.9)
            if self._liver_field_uv(np.array([u]), np.array([v]), t)[0] < 1.0 - margin and \
                    self._cavity_depth_uv(u, v) > 0.05:
                return u, v
        return None

    def _cavity_depth_uv(self, u: float, v: float) -> float:
        p = self.p_ant if v < 0 else self.p_post
        return 1.0 - (abs(u) ** p + abs(v) ** p) ** (1 / p)

    def _liver_field_uv(self, U: np.ndarray, V: np.ndarray, t: float) -> np.ndarray:
        """Implicit liver field at depth t (<1 inside), in inner-cavity units."""
        if t < -0.02 or t > 1.02:
            return np.full(np.broadcast(U, V).shape, 9.0, np.float32)
        tc = min(max(t, 0.0), 1.0)
        s = max(1.0 - ((tc - 0.4) / 0.62) ** 2, 0.0) ** 0.6
        s = max(s, 1e-3)
        ur, vr, ar, br = self.liver_right
        # The right lobe shrinks towards its lateral, anterior tip as it goes down.
        cu = ur - 0.12 * max(tc - 0.55, 0)
        cv = vr - 0.25 * max(tc - 0.6, 0)
        q1 = ((U - cu) / (ar * s)) ** 2 + ((V - cv) / (br * s)) ** 2
        ul, vl, al, bl, t_end = self.liver_left
        if tc < t_end:
            sl = max(1.0 - (tc / t_end) ** 2, 0.02) ** 0.5
            q2 = ((U - ul) / (al * sl)) ** 2 + ((V - vl) / (bl * sl)) ** 2
            q1 = _smin(q1, q2, 6.0)
        return q1

    def _liver_big_vessels(self, lab, t, liver):
        """Hepatic veins converging on the IVC (upper liver) and the portal bifurcation at the hilum."""
        ix, iy = self.ivc
        if t < 0.42:
            reach = (0.42 - t) / 0.42
            for j, psi in enumerate(self.vein_psi):
                ln = (50 + 45 * reach) * (0.8 if j == 2 else 1.0)
                ex, ey = ix - ln * math.cos(psi), iy - ln * math.sin(psi)
                b = self._box((ix + ex) / 2, (iy + ey) / 2, ln / 2 + 10)
                if b is None:
                    continue
                box, xx, yy = b
                d = _segment_distance(xx, yy, (ix, iy), (ex, ey))
                along = np.clip(((xx - ix) * (ex - ix) + (yy - iy) * (ey - iy)) / (ln * ln), 0, 1)
                width = (3.5 + 3.5 * reach) * (1 - 0.6 * along)
                lab[box][(d < width) & liver[box]] = HEPATIC_VEIN
        else:
            dd = 35 + 60 * (t - 0.42)
            for psi in self.vein_psi:
                self._fill(lab, ix - dd * math.cos(psi), iy - dd * math.sin(psi), 3.2, 3.2, HEPATIC_VEIN,
                           within=liver)
        dt = abs(t - self.t_portal)
        if dt < 0.1:
            w = 6.5 * (1 - dt / 0.1) + 2.5
            hx, hy = ix - 4, iy - 26  # hilum: anterior to the IVC
            rx_, ry_ = self.uv_to_xy(self.liver_right[0] + 0.1, self.liver_right[1])
            lx_, ly_ = self.uv_to_xy(self.liver_left[0], self.liver_left[1] + 0.1)
            for ex, ey, f in ((rx_, ry_, 1.0), (lx_, ly_, 0.8)):
                e2 = (hx + (ex - hx) * 0.7, hy + (ey - hy) * 0.7)
                b = self._box((hx + e2[0]) / 2, (hy + e2[1]) / 2, math.dist((hx, hy), e2) / 2 + 12)
                if b is None:
                    continue
                box, xx, yy = b
                d = _segment_distance(xx, yy, (hx, hy), e2)
                lab[box][(d < w * f) & liver[box]] = PORTAL_VEIN
            if t > self.t_portal:
                box, q = self._ellipse(hx, hy, w + 3, w + 3)
                if box is not None:
                    lab[box][(q < 1) & (lab[box] != AIR)] = PORTAL_VEIN

    def _segments(self, t, lab) -> np.ndarray:
        """Couinaud segment (1..8) of every liver pixel: hepatic-vein planes around the IVC + portal plane."""
        liver = (lab == LIVER) | (lab == HEPATIC_VEIN) | (lab == PORTAL_VEIN)
        seg = np.zeros(lab.shape, np.uint8)
        rows, cols = np.nonzero(liver)
        if rows.size == 0:
            return seg
        xs = self._xs
        X, Y = xs[cols], xs[rows]
        ix, iy = self.ivc
        psi = np.arctan2(-(Y - iy), -(X - ix))  # 0 = patient right, pi/2 = anterior, pi = patient left
        psi = np.where(psi < -np.pi * 0.6, psi + 2 * np.pi, psi)  # the posterior-left liver joins segment II
        r_, m_, l_ = self.vein_psi
        sup = t < self.t_portal
        val = np.where(psi < r_, 7 if sup else 6,
                       np.where(psi < m_, 8 if sup else 5, np.where(psi < l_, 4, 2 if sup else 3)))
        if 0.2 < t < 0.62:
            near = ((X - ix - 14) ** 2 + (Y - iy + 6) ** 2) < 26**2
            val = np.where(near & (psi > 1.35) & (psi < 3.6), 1, val)
        seg[rows, cols] = val
        return seg


def _segment_distance(X, Y, a, b) -> np.ndarray:
    ax, ay = a
    bx, by = b
    vx, vy = bx - ax, by - ay
    L2 = vx * vx + vy * vy or 1e-9
    s = np.clip(((X - ax) * vx + (Y - ay) * vy) / L2, 0, 1)
    return np.sqrt((X - ax - s * vx) ** 2 + (Y - ay - s * vy) ** 2)


def _polyline_distance(X, Y, pts) -> np.ndarray:
    d = None
    for a, b in zip(pts[:-1], pts[1:], strict=False):
        e = _segment_distance(X, Y, a, b)
        d = e if d is None else np.minimum(d, e)
    return d

