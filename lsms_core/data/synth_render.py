"""Synthetic CT rendering: ``_CaseModel`` draws every random choice of a case once, then renders one slice at
a time (labels -> HU by the case's lookup table -> textures -> lesions -> partial-volume blur -> noise).

Part of the synthetic CT generator (``lsms_core.data.synth``, whose docstring describes a case).
"""

from __future__ import annotations

import math

import numpy as np

from lsms_core.data.synth_anatomy import _Anatomy, _polyline_distance
from lsms_core.data.synth_labels import (
    _HU,
    _TEX,
    AIR,
    AORTA,
    BOWEL_FLUID,
    BOWEL_WALL,
    CALCIUM,
    CORTEX,
    CSF,
    FAT,
    GALLBLADDER,
    GAS,
    HEPATIC_VEIN,
    IVC,
    KIDNEY_CORTEX,
    KIDNEY_MEDULLA,
    LIVER,
    LUNG,
    MARROW,
    MUSCLE,
    N_LABELS,
    PANCREAS,
    PHASES,
    PORTAL_VEIN,
    SKIN,
    SPLEEN,
    STOMACH_FLUID,
    STOMACH_WALL,
    STOOL,
    TABLE,
    TABLE_CORE,
    VISCERAL_FAT,
    SynthError,
)
from lsms_core.data.synth_lesions import LesionSpec, _Lesions


class _CaseModel(_Anatomy, _Lesions):
    """All random choices of one case, drawn once; ``render(k)`` draws slice k."""

    # Long by design: every random draw of a case in one fixed order; reordering changes every seed's case.
    def __init__(self, rng: np.random.Generator, size: int, n_slices: int, *, phase: str | None = None,
                 spacing_mm: float | None = None, thickness_mm: float | None = None,
                 lesions: list[dict] | None = None, n_lesions: int | None = None, seed: int = 0):
        self.rng = rng
        self.seed_base = int(seed)
        self.n = size
        self.k = n_slices
        # Pixel spacing of a 512 matrix is 0.6-0.9 mm; smaller matrices cover the same field of view.
        sp512 = spacing_mm if spacing_mm else rng.uniform(0.62, 0.9)
        self.fov = sp512 * 512
        self.sp = self.fov / size
        self.th = thickness_mm or float(rng.choice([2.0, 2.5, 3.0, 4.0, 5.0], p=[0.1, 0.25, 0.2, 0.15, 0.3]))
        self.phase = phase or str(rng.choice(PHASES, p=[0.15, 0.2, 0.5, 0.15]))
        if self.phase not in PHASES:
            raise SynthError("phase", f"must be one of {', '.join(PHASES)}, got {self.phase!r}")
        self.phase_i = PHASES.index(self.phase)
        # ---- body habitus: half-width a, half-depth b, fat thicknesses (mm)
        half = 0.5 * self.fov
        obese = rng.uniform(0, 1) ** 1.6
        # fat adds to the body around organs of ordinary size: obese bodies are larger, not fuller inside
        self.a = min(rng.uniform(120, 160) + 32 * obese, 0.47 * self.fov)
        self.b = min(self.a * rng.uniform(0.66, 0.82), 0.42 * self.fov)
        self.fat_ant = 8 + 38 * obese + rng.uniform(-3, 3)
        self.fat_lat = 6 + 30 * obese + rng.uniform(-3, 3)
        self.fat_post = 6 + 22 * obese + rng.uniform(-2, 2)
        self.wall = rng.uniform(7, 13)
        self.cx = rng.uniform(-0.04, 0.04) * self.fov
        self.cy = rng.uniform(-0.06, 0.04) * self.fov
        self.tilt = rng.uniform(-0.05, 0.05)
        self.p_ant, self.p_post = rng.uniform(2.0, 2.4), rng.uniform(2.8, 3.8)
        self.ai = self.a - self.fat_lat - self.wall  # inner cavity half-sizes for organ placement
        self.bi = self.b - 0.5 * (self.fat_ant + self.fat_post) - self.wall
        self.y_post = self.cy + self.b
        self.y_vb = self.y_post - self.fat_post - 84 + rng.uniform(-6, 6)  # vertebral body centre
        self.vb_r = (rng.uniform(19, 24), rng.uniform(15, 19))
        # ---- z: liver from its dome (t=0) to its inferior tip (t=1); the scan window covers part or all
        self.L = rng.uniform(145, 190)
        coverage = self.k * self.th
        self.z_dome = 0.0
        if coverage >= self.L * 1.1:
            t_top = rng.uniform(-0.12, 0.0)
        else:
            t_top = rng.uniform(-0.05, max(-0.05, 1.0 - coverage / self.L - 0.05))
        self.t_top = t_top
        self.z_top = self.z_dome - t_top * self.L  # z of slice k = K-1 (k grows towards the head)
        self.origin_z = self.z_top - (self.k - 1) * self.th
        # ---- contrast levels: a per-case lookup table from labels to HU (phase + individual variation)
        self.fatty = rng.uniform() < 0.1
        self.lut = np.zeros(N_LABELS, np.float32)
        for lab, vals in _HU.items():
            jitter = 0.0 if lab in (AIR, GAS, TABLE, TABLE_CORE) else rng.normal(0, 4 + 0.06 * abs(vals[self.phase_i]))
            self.lut[lab] = vals[self.phase_i] + jitter
        if self.fatty:  # steatosis: the liver falls below the spleen on every phase
            self.lut[LIVER] -= rng.uniform(25, 45)
        self.lut[CORTEX] = rng.uniform(500, 900)
        self.lut[MARROW] = rng.uniform(120, 260)
        self.oral_contrast = rng.uniform() < 0.3
        if self.oral_contrast:
            self.lut[BOWEL_FLUID] = rng.uniform(180, 320)
        if rng.uniform() < 0.25:
            self.lut[STOMACH_FLUID] = rng.uniform(150, 300) if self.oral_contrast else rng.uniform(-20, 40)
        self.tex_amp = np.zeros(N_LABELS, np.float32)
        for lab, amp in _TEX.items():
            self.tex_amp[lab] = amp
        if self.phase == "arterial":
            self.tex_amp[SPLEEN] = 30.0  # arciform enhancement of the spleen
        # ---- noise: dose and body size; smaller matrices average more photons per pixel
        self.noise_sd = rng.uniform(9, 18) * (1 + 0.5 * obese) * math.sqrt(size / 512)
        self.noise_corr = rng.uniform(0.6, 1.0)  # px (512 scale): the reconstruction kernel's blur
        self.pv_sigma = rng.uniform(0.45, 0.75) * (size / 512) ** 0.3 + 0.1 * (self.th >= 4)
        # ---- anatomy variation (inner-cavity normalised units, U: patient left +, V: posterior +)
        self.liver_right = (rng.uniform(-0.5, -0.38), rng.uniform(-0.1, 0.05), rng.uniform(0.5, 0.62),
                            rng.uniform(0.78, 0.95))
        self.liver_left = (rng.uniform(0.0, 0.22), rng.uniform(-0.55, -0.4), rng.uniform(0.35, 0.55),
                           rng.uniform(0.24, 0.34), rng.uniform(0.35, 0.6))  # ..., its lower end t
        self.ivc = (self.cx - rng.uniform(18, 26), self.y_vb - self.vb_r[1] - rng.uniform(14, 22))
        self.aorta = (self.cx + rng.uniform(8, 18), self.y_vb - self.vb_r[1] - rng.uniform(6, 14),
                      rng.uniform(10, 14))
        self.aortic_calc = [(rng.uniform(0, 2 * np.pi), rng.uniform(0, 1)) for _ in range(int(rng.integers(0, 5)))]
        deg = np.pi / 180
        self.vein_psi = (rng.uniform(12, 28) * deg, rng.uniform(58, 75) * deg, rng.uniform(108, 128) * deg)
        self.t_portal = rng.uniform(0.38, 0.5)
        self.spleen = (rng.uniform(0.55, 0.7), rng.uniform(0.25, 0.45), rng.uniform(0.16, 0.24),
                       rng.uniform(0.3, 0.42), rng.uniform(0.3, 0.7), rng.uniform(0.02, 0.15),
                       rng.uniform(0.55, 0.75))
        self.stomach = (rng.uniform(0.2, 0.45), rng.uniform(-0.35, -0.1), rng.uniform(0.22, 0.33),
                        rng.uniform(0.2, 0.3), rng.uniform(-0.6, 0.6), rng.uniform(0.0, 0.55),
                        rng.uniform(-0.4, 0.1))
        self.kidneys = []
        for side, t0 in ((-1, rng.uniform(0.52, 0.7)), (1, rng.uniform(0.42, 0.6))):
            self.kidneys.append((side, self.cx + side * rng.uniform(55, 75), self.y_vb + rng.uniform(-8, 12),
                                 rng.uniform(24, 30), rng.uniform(19, 24), side * rng.uniform(0.3, 0.7),
                                 t0, rng.uniform(95, 120) / self.L))
        self.gb = (rng.uniform() < 0.8, rng.uniform(0.5, 0.65), rng.uniform(14, 20), rng.uniform(20, 30))
        self.ribs = self._draw_ribs(rng)
        self.bowel = self._draw_bowel(rng)
        self.vessels = self._draw_liver_vessels(rng)
        self.lesions: list[LesionSpec] = []
        if lesions is not None:
            for i, d in enumerate(lesions):
                self.lesions.append(self._lesion_from_dict(d, i, rng))
        else:
            n_les = n_lesions if n_lesions is not None else int(rng.choice([1, 2, 3, 3, 4, 4, 5, 6]))
            self._place_lesions(rng, n_les)
        # ---- textures: coarse 3D noise upsampled per slice by fixed bilinear-ish weights
        nz = int(self.k * self.th / 24) + 3
        self.tex_low = rng.standard_normal((nz, 10, 10)).astype(np.float32)
        self.tex_mid = rng.standard_normal((nz * 3, 40, 40)).astype(np.float32)
        self.w_low_mid = _upsample_weights(10, 40)
        pos = np.clip((np.arange(size) + 0.5) * 40 / size - 0.5, 0, 39 - 1e-6)
        self._up_i0 = pos.astype(np.intp)
        self._up_f = (pos - self._up_i0).astype(np.float32)
        self.x0 = -0.5 * self.fov + 0.5 * self.sp  # x of column 0, y of row 0
        self._xs = (self.x0 + self.sp * np.arange(size)).astype(np.float32)  # x of columns = y of rows
        del half

    # ------------------------------------------------------------------ rendering
    def texture(self, k: int) -> np.ndarray:
        """Slowly varying texture of slice k (unit variance): coarse 3D noise, interpolated, upsampled once."""
        def plane(src, step):
            zc = (k * self.th) / step
            z0 = min(int(zc), src.shape[0] - 2)
            f = zc - z0
            return (1 - f) * src[z0] + f * src[z0 + 1]

        coarse = 0.55 * (self.w_low_mid @ plane(self.tex_low, 24.0) @ self.w_low_mid.T) + 0.45 * plane(self.tex_mid, 8.0)
        # Bilinear gathers rather than a matrix product: OpenBLAS threads thrash on a busy machine.
        i0, f = self._up_i0, self._up_f
        rows = coarse[i0] * (1 - f)[:, None] + coarse[i0 + 1] * f[:, None]
        return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]

    def _box(self, cx: float, cy: float, R: float):
        """Pixel box around (cx, cy) +- R mm, with the 1D x (1, w) and y (h, 1) coordinates of its pixels."""
        xs = self._xs
        c0, c1 = np.searchsorted(xs, [cx - R, cx + R])
        r0, r1 = np.searchsorted(xs, [cy - R, cy + R])
        if c1 <= c0 or r1 <= r0:
            return None
        return (slice(r0, r1), slice(c0, c1)), xs[c0:c1][None, :], xs[r0:r1][:, None]

    def _ellipse(self, cx, cy, rx, ry, ang=0.0):
        """(box, q) with q < 1 inside the rotated ellipse, evaluated only in its bounding box."""
        b = self._box(cx, cy, max(rx, ry) * 1.25 + 1)
        if b is None:
            return None, None
        box, xx, yy = b
        dx, dy = xx - cx, yy - cy
        if ang:
            ca, sa = math.cos(ang), math.sin(ang)
            dx, dy = ca * dx + sa * dy, -sa * dx + ca * dy
        return box, (dx / rx) ** 2 + (dy / ry) ** 2

    def _fill(self, lab, cx, cy, rx, ry, label, ang=0.0, qmax=1.0, within=None):
        box, q = self._ellipse(cx, cy, rx, ry, ang)
        if box is None:
            return None, None
        m = q < qmax
        if within is not None:
            m &= within[box]
        lab[box][m] = label
        return box, q

    # Long by design: one painter's pass, each structure drawn over the last; the order must read top down.
    def render(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Slice k -> (HU int16, organ labels uint8, lesion labels uint8, segment labels uint8)."""
        n = self.n
        z = self.z_of(k)
        t = self.t_of(z)
        xs = self._xs
        X, Y = xs[None, :], xs[:, None]
        lab = np.zeros((n, n), np.uint8)
        texm = self.texture(k)
        # ---- table under the patient: a curved shell with a foam core
        b = self._box(self.cx, self.y_post + 40, 260)
        if b is not None:
            box, xx, yy = b
            yt = self.y_post + 1.5 - 0.0005 * (xx - self.cx) ** 2
            tab = (yy >= yt) & (yy < yt + 30) & (np.abs(xx - self.cx) < 230)
            shell = tab & ((yy < yt + 3) | (yy >= yt + 27))
            lab[box][tab] = TABLE_CORE
            lab[box][shell] = TABLE
        # ---- body: superellipse (fuller in front, flatter on the table); layers by depth under the skin
        u = (X - self.cx) / self.a
        v = (Y - self.cy) / self.b
        p = np.where(v < 0, self.p_ant, self.p_post).astype(np.float32)
        S = np.abs(u) ** p + np.abs(v) ** p
        rho = S ** (1.0 / p)
        body = rho <= 1
        r = np.sqrt((X - self.cx) ** 2 + (Y - self.cy) ** 2)
        depth = r * (1 / np.maximum(rho, 1e-6) - 1)
        wv = np.clip(v * 1.4, -1, 1)
        fat_th = np.where(wv < 0, self.fat_lat - (self.fat_ant - self.fat_lat) * wv,
                          self.fat_lat + (self.fat_post - self.fat_lat) * wv)
        lab[body] = SKIN
        lab[body & (depth > 2.0)] = FAT
        muscle = body & (depth > fat_th)
        lab[muscle] = MUSCLE
        # The wall is not a uniform ring: paired recti in front (split by the linea alba), thinner obliques
        # at the flanks, thin posteriorly where the paraspinal muscles take over.
        front = np.clip(-wv, 0, 1) * np.exp(-(((X - self.cx) / 70.0) ** 2))
        wall_th = self.wall * (0.75 + 0.8 * front - 0.2 * np.clip(wv, 0, 1))
        cavity = body & (depth > fat_th + wall_th)
        lab[muscle & ~cavity & (np.abs(X - self.cx) < 3.5) & (Y - self.cy < 0)] = FAT
        lab[cavity] = VISCERAL_FAT
        # ---- paraspinal and psoas muscles
        y_canal = self.y_vb + self.vb_r[1] + 12
        for side in (-1, 1):
            self._fill(lab, self.cx + side * 34, y_canal + 22, 25, 30, MUSCLE, within=muscle)
        if t > 0.55:
            ps = min((t - 0.55) / 0.4, 1.0)
            for side in (-1, 1):
                self._fill(lab, self.cx + side * (28 + 6 * ps), self.y_vb - 4, 8 + 14 * ps, 8 + 12 * ps, MUSCLE)
        # ---- the liver's implicit field (needed by lungs and stomach too), in its bounding box
        liver_q = np.full((n, n), 9.0, np.float32)
        lb = self._box(*self.uv_to_xy(-0.2, -0.1), 1.1 * max(self.ai, self.bi))
        if lb is not None and -0.02 <= t <= 1.02:
            box, xx, yy = lb
            # a gently irregular capsule rather than a perfect implicit surface
            liver_q[box] = self._liver_field_uv((xx - self.cx) / self.ai, (yy - self.cy) / self.bi, t) * (
                1.0 + 0.05 * texm[box])
        # ---- lung bases (posterior costophrenic recesses) in the upper liver
        if t < 0.32:
            lung_s = ((0.32 - t) / 0.42) ** 0.6
            for side in (-1, 1):
                lx, ly = self.uv_to_xy(side * 0.52, 0.45)
                box, q = self._ellipse(lx, ly, (0.42 * lung_s + 0.05) * self.ai, (0.5 * lung_s + 0.05) * self.bi)
                if box is None:
                    continue
                region = (q < 1) & cavity[box]
                lab[box][region] = MUSCLE  # diaphragm and pleura between lung and abdomen
                lab[box][region & (q < 0.85) & (liver_q[box] > 1.12)] = LUNG
        # ---- bowel loops (3D tubes) and colon with gas and stool
        for A, B, rad, kind in self.bowel:
            self._tube(lab, z, A, B, rad, BOWEL_WALL, cavity)
            m = self._tube_mask(z, A, B, rad - 2.0)
            if m is not None:
                box, mk, yy = m
                mk &= cavity[box]
                if kind == "colon":
                    ymid = float(np.broadcast_to(yy, mk.shape)[mk].mean()) if mk.any() else 0.0
                    fill = np.where(yy < ymid - 0.3 * rad, GAS, STOOL).astype(np.uint8)
                    lab[box][mk] = np.broadcast_to(fill, mk.shape)[mk]
                else:
                    lab[box][mk] = BOWEL_FLUID
        # ---- pancreas and splenic vein
        if 0.5 < t < 0.88:
            pts = [(self.cx + 78, self.y_vb - 18), (self.cx + 30, self.y_vb - 50), (self.cx - 20, self.y_vb - 52),
                   (self.cx - 42, self.y_vb - 38)]
            pr = 11 * math.sin(math.pi * (t - 0.5) / 0.38) + 3
            box, xx, yy = self._box(self.cx + 18, self.y_vb - 35, 80)
            d = _polyline_distance(xx, yy, pts)
            lab[box][(d < pr) & cavity[box]] = PANCREAS
            if t < 0.7:
                d2 = _polyline_distance(xx, yy, [(x, y + pr + 2) for x, y in pts[:3]])
                lab[box][(d2 < 4.5) & cavity[box]] = PORTAL_VEIN
        # ---- stomach: wall, contents, gas anteriorly (the patient lies supine)
        su, sv, sa, sb, sang, _t0, tls = self.stomach
        ss = max(0.0, 1 - ((t - 0.25) / 0.4) ** 2) ** 0.5 if t < 0.62 else 0.0
        if ss > 0.05:
            gx, gy = self.uv_to_xy(su + 0.1 * (t - 0.2), sv)
            rxs, rys = sa * ss * self.ai, sb * ss * self.bi
            box, q = self._ellipse(gx, gy, rxs, rys, sang)
            if box is not None:
                st = (q < 1) & cavity[box] & (liver_q[box] > 1.0)
                lab[box][st] = STOMACH_WALL
                inner = st & (q < (1 - 5.0 / min(rxs, rys)) ** 2)
                lab[box][inner] = STOMACH_FLUID
                lab[box][inner & (Y[box[0]] < gy + tls * rys)] = GAS
        # ---- spleen: a crescent, left posterior
        pu, pv, pa, pb, pang, t0p, t1p = self.spleen
        if t0p < t < t1p + 0.05:
            ss = max(0.0, 1 - ((t - (t0p + t1p) / 2) / ((t1p - t0p) / 2 + 0.05)) ** 2) ** 0.5
            if ss > 0.05:
                px, py = self.uv_to_xy(pu, pv)
                box, q = self._ellipse(px, py, pa * ss * self.ai, pb * ss * self.bi, pang)
                if box is not None:
                    ix_, iy_ = self.uv_to_xy(pu - 0.12 * ss, pv - 0.1 * ss)
                    xx, yy = X[:, box[1]], Y[box[0], :]
                    qi = ((xx - ix_) / (pa * ss * 0.7 * self.ai)) ** 2 + ((yy - iy_) / (pb * ss * 0.6 * self.bi)) ** 2
                    lab[box][(q < 1) & (qi > 1) & cavity[box]] = SPLEEN
        # ---- liver and its vessels
        liver = (liver_q < 1.0) & cavity
        lab[liver] = LIVER
        self._liver_big_vessels(lab, t, liver)
        for A, B, rad, kind in self.vessels:
            self._tube(lab, z, A, B, rad, kind, liver)
        # ---- kidneys (after the liver, which they indent), with a rim of perirenal fat
        for side, kx, ky, ka, kb, kang, t0k, lk in self.kidneys:
            if t0k < t < t0k + lk:
                ks = max(0.0, 1 - ((t - t0k - lk / 2) / (lk / 2)) ** 2) ** 0.5
                if ks < 0.15:
                    continue
                box, q = self._ellipse(kx, ky, ka * ks * 1.25, kb * ks * 1.25, kang)
                if box is None:
                    continue
                q = q * 1.5625  # back to the kidney's own radii
                cav = cavity[box]
                lab[box][(q < 1.45) & cav] = VISCERAL_FAT
                kid = (q < 1) & cav
                lab[box][kid] = KIDNEY_CORTEX
                med = kid & (q < (1 - 6.5 / (kb * ks)) ** 2)
                lab[box][med] = KIDNEY_MEDULLA
                hil = med & ((X[:, box[1]] - kx) * -side > 0) & (q < 0.35) & (ks > 0.6)
                lab[box][hil] = VISCERAL_FAT  # renal sinus fat at the medial hilum
        # ---- gallbladder in its fossa under the liver
        has_gb, tgb, rgb, lgb = self.gb
        span = lgb / self.L * 3
        if has_gb and tgb < t < tgb + span:
            gs = max(0.0, 1 - ((t - tgb - span / 2) / (span / 2)) ** 2) ** 0.5
            if gs > 0.1:
                gx, gy = self.ivc[0] - 28, self.ivc[1] - 60
                box, q = self._fill(lab, gx, gy, rgb * gs * 0.8 + 0.5, rgb * gs + 0.5, BOWEL_WALL, within=cavity)
                if box is not None:
                    lab[box][(q < 0.78) & cavity[box]] = GALLBLADDER
        # ---- IVC, aorta (with wall calcifications)
        ivc_r = (12, 9) if t < 0.85 else (11, 8)
        self._fill(lab, self.ivc[0], self.ivc[1], ivc_r[0], ivc_r[1], IVC)
        ax, ay, ar = self.aorta
        self._fill(lab, ax, ay, ar, ar, AORTA)
        for ang, zf in self.aortic_calc:
            if abs((k / max(self.k - 1, 1)) - zf) < 0.12:
                self._fill(lab, ax + (ar - 1) * math.cos(ang), ay + (ar - 1) * math.sin(ang), 2.2, 2.2, CALCIUM)
        # ---- vertebra: body (cortex + cancellous), canal, arch, spinous and transverse processes
        rx, ry = self.vb_r
        box, q = self._fill(lab, self.cx, self.y_vb, rx, ry, CORTEX)
        lab[box][q < (1 - 2.2 / ry) ** 2] = MARROW
        box, q = self._ellipse(self.cx, y_canal, 15.5, 15.5)
        lab[box][(q < 1) & (Y[box[0]] > self.y_vb)] = CORTEX
        lab[box][q < (9.5 / 15.5) ** 2] = CSF
        self._fill(lab, self.cx, y_canal + 30, 5.0, 16.0, CORTEX)
        if t > 0.6:
            for side in (-1, 1):
                self._fill(lab, self.cx + side * 30, y_canal - 2, 16, 5, CORTEX)
        # ---- ribs: oval cross-sections in the body wall, drifting around it along z
        for side, a0, drift, tmax, rl, rs in self.ribs:
            if t > tmax:
                continue
            ang = a0 + drift * t
            dirx, diry = side * math.cos(ang), math.sin(ang)
            pe = self.p_ant if diry < 0 else self.p_post
            ru = (abs(dirx) ** pe + abs(diry * self.a / self.b) ** pe) ** (-1 / pe) * self.a
            fat = self.fat_lat if abs(dirx) > 0.5 else (self.fat_ant if diry < 0 else self.fat_post)
            rr = ru - fat - self.wall * 0.5
            box, q = self._fill(lab, self.cx + rr * dirx, self.cy + rr * diry, rl, rs, CORTEX,
                                ang=math.atan2(dirx, -diry))
            if box is not None:
                lab[box][q < 0.35] = MARROW
        # ---- HU from labels, textures
        hu = self.lut[lab] + self.tex_amp[lab] * texm
        # ---- Couinaud segments and lesions
        seg = self._segments(t, lab)
        les = np.zeros((n, n), np.uint8)
        domain = (lab == LIVER) | (lab == HEPATIC_VEIN) | ((lab == PORTAL_VEIN) & (seg > 0))
        for i, spec in enumerate(self.lesions, start=1):
            self._paint_lesion(hu, les, domain, z, spec, i, texm)
        # ---- partial volume, then CT noise with the reconstruction kernel's correlation
        from scipy import ndimage

        hu = ndimage.gaussian_filter(hu, self.pv_sigma, mode="nearest", truncate=3.0)
        noise = self.rng_slice(k).standard_normal((n, n), dtype=np.float32)
        sig = self.noise_corr * n / 512
        if sig > 0.3:
            noise = ndimage.gaussian_filter(noise, sig, mode="wrap", truncate=2.5)
            noise *= 1.0 / max(float(noise.std()), 1e-6)
        hu += noise * self.noise_sd
        hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
        return hu, lab, les, seg

    def rng_slice(self, k: int) -> np.random.Generator:
        return np.random.default_rng([self.seed_base, 1000 + k])

    def _tube_mask(self, z, A, B, rad):
        """Cross-section of a 3D capsule with slice z: (box, mask, y of rows) or None."""
        a, b = np.asarray(A, float), np.asarray(B, float)
        zmin, zmax = min(a[2], b[2]) - rad, max(a[2], b[2]) + rad
        if not (zmin <= z <= zmax):
            return None
        # only the part of the axis within rad of this slice can reach it
        ab = b - a
        if abs(ab[2]) > 1e-6:
            s0, s1 = sorted(((z - rad - a[2]) / ab[2], (z + rad - a[2]) / ab[2]))
            s0, s1 = max(s0, 0.0), min(s1, 1.0)
        else:
            s0, s1 = 0.0, 1.0
        p0, p1 = a + s0 * ab, a + s1 * ab
        bx = self._box((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2,
                       max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1])) / 2 + rad + 1)
        if bx is None:
            return None
        box, xx, yy = bx
        denom = float(ab @ ab) or 1e-9
        s = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1] + (z - a[2]) * ab[2]) / denom, 0, 1)
        d2 = (xx - a[0] - s * ab[0]) ** 2 + (yy - a[1] - s * ab[1]) ** 2 + (z - a[2] - s * ab[2]) ** 2
        return box, d2 < rad * rad, yy

    def _tube(self, lab, z, A, B, rad, label, within):
        m = self._tube_mask(z, A, B, rad)
        if m is None:
            return
        box, mk, _ = m
        lab[box][mk & within[box]] = label


def _upsample_weights(m: int, n: int) -> np.ndarray:
    """(n, m) smooth interpolation weights from an m-point coarse grid to n pixels (Gaussian kernel)."""
    centres = (np.arange(m) + 0.5) / m
    pos = (np.arange(n) + 0.5) / n
    w = np.exp(-0.5 * ((pos[:, None] - centres[None, :]) * m / 0.8) ** 2)
    w /= np.sqrt((w**2).sum(axis=1, keepdims=True))  # keeps unit variance for white coarse noise
    return w.astype(np.float32)

