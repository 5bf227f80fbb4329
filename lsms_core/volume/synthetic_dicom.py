"""Synthetic but realistic CT DICOM series, for tests, benchmarks and demos.

Files carry the header fields a real CT scanner writes (CT Image Storage, rescale to HU, window, kVp,
kernel, frame of reference, positions/orientation, ...) with 12-bit signed int16 pixels. Patient fields are
synthetic placeholders; nothing identifies a person. The image is an abdomen-like phantom (body, fat
ring, liver, kidneys, spine, a few low-density lesions, correlated noise), cheap to generate.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
_AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _phantom_slice(rows: int, cols: int, z_frac: float, rng: np.random.Generator) -> np.ndarray:
    """One HU slice (float32) of an abdomen-like phantom; z_frac in [0, 1] varies organs along z."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    yy = (yy - rows / 2) / (rows / 2)
    xx = (xx - cols / 2) / (cols / 2)
    img = np.full((rows, cols), -1000.0, np.float32)
    body = (xx / 0.85) ** 2 + (yy / 0.62) ** 2 <= 1
    img[body] = -100.0  # subcutaneous fat
    img[(xx / 0.78) ** 2 + (yy / 0.55) ** 2 <= 1] = 35.0  # muscle / soft tissue
    liver_r = 0.28 + 0.06 * math.sin(math.pi * z_frac)
    # Patient's right is image left (radiological display): the liver sits at negative x.
    img[((xx + 0.35) / liver_r) ** 2 + ((yy + 0.05) / (liver_r * 0.9)) ** 2 <= 1] = 60.0
    for side in (-1, 1):
        img[((xx - side * 0.3) / 0.09) ** 2 + ((yy - 0.22) / 0.13) ** 2 <= 1] = 30.0  # kidneys
    img[((xx) / 0.09) ** 2 + ((yy - 0.38) / 0.09) ** 2 <= 1] = 700.0  # vertebra
    img[((xx) / 0.05) ** 2 + ((yy - 0.38) / 0.05) ** 2 <= 1] = 250.0  # cancellous bone
    img[((xx - 0.05) / 0.06) ** 2 + ((yy - 0.12) / 0.06) ** 2 <= 1] = 150.0  # aorta (contrast)
    # Low-density lesions in the liver whose radius varies with z, like spheres cut by the slice.
    for cx, cy, cz, rad in ((-0.42, -0.1, 0.5, 0.07), (-0.28, 0.05, 0.35, 0.04)):
        r2 = rad ** 2 - ((z_frac - cz) * 0.5) ** 2
        if r2 > 0:
            img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r2] = 10.0
    noise = rng.normal(0.0, 12.0, (rows // 2 + 1, cols // 2 + 1)).astype(np.float32)
    # Nearest-neighbour upsampling of half-resolution noise gives CT-like spatially correlated noise.
    noise = np.repeat(np.repeat(noise, 2, axis=0), 2, axis=1)[:rows, :cols]
    img += noise * body
    return img


def _base_dataset(series_uid: str, study_uid: str, frame_uid: str, *, sop_class: str,
                  rows: int, cols: int, pixel_spacing: Sequence[float], thickness: float,
                  description: str, window: tuple[float, float] | None):
    from pydicom.dataset import Dataset

    now = _dt.datetime(2024, 1, 15, 10, 30, 0)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "LSMS synthetic"
    ds.ManufacturerModelName = "Phantom CT"
    ds.InstitutionName = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic abdomen"
    ds.SeriesDescription = description
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "SYNTHETIC"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.BodyPartExamined = "ABDOMEN"
    ds.SliceThickness = f"{thickness:g}"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = f"{pixel_spacing[1] * cols:.1f}"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "150"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "200"
    ds.Exposure = "100"
    ds.ConvolutionKernel = "B30f"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = "2"
    ds.AcquisitionNumber = "1"
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.PixelSpacing = [f"{pixel_spacing[0]:.6g}", f"{pixel_spacing[1]:.6g}"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 1
    if window is not None:
        ds.WindowCenter = f"{window[0]:g}"
        ds.WindowWidth = f"{window[1]:g}"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    return ds


def _file_meta(sop_class: str, sop_uid: str):
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _geometry(orientation, spacing, origin, gantry_tilt_deg):
    row = np.asarray(orientation[:3], float)
    col = np.asarray(orientation[3:], float)
    row /= np.linalg.norm(row)
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)
    # Gantry tilt shears the stack: each slice moves along the column direction by dz*tan(tilt).
    step = spacing[2] * (normal + math.tan(math.radians(gantry_tilt_deg)) * col)
    return row, col, normal, step, np.asarray(origin, float)


def write_ct_series(
    folder: Path | str,
    *,
    slices: int = 40,
    rows: int = 512,
    cols: int = 512,
    spacing: Sequence[float] = (0.75, 0.75, 2.5),
    orientation: Sequence[float] = _AXIAL,
    origin: Sequence[float] = (-192.0, -192.0, -300.0),
    gantry_tilt_deg: float = 0.0,
    skip: Sequence[int] = (),
    shuffle_names: bool = False,
    series_uid: str | None = None,
    description: str = "Synthetic abdomen 2.5mm",
    window: tuple[float, float] | None = (40.0, 400.0),
    compression: str | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write a CT series (one file per slice) into ``folder``; returns the file paths written.

    ``spacing`` is (column spacing x, row spacing y, slice step z) in mm; ``orientation`` is the DICOM
    ImageOrientationPatient (row then column direction cosines, LPS). Slice k sits at
    ``origin + k * step``. ``skip`` leaves slice indices out (to test gap detection); ``shuffle_names``
    names files randomly so file order says nothing; ``compression`` is None, "rle" or "jpeg2000"
    (lossless). Deterministic for a given ``seed``.
    """
    from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    root = "1.2.826.0.1.3680043.8.498."  # pydicom's UID root
    study_uid = generate_uid(root, entropy_srcs=[f"study{seed}"])
    series_uid = series_uid or generate_uid(root, entropy_srcs=[f"series{seed}{description}"])
    frame_uid = generate_uid(root, entropy_srcs=[f"frame{seed}"])
    row, col, normal, step, origin_v = _geometry(orientation, spacing, origin, gantry_tilt_deg)
    base = _base_dataset(series_uid, study_uid, frame_uid, sop_class=CT_IMAGE_STORAGE, rows=rows,
                         cols=cols, pixel_spacing=(spacing[1], spacing[0]), thickness=spacing[2],
                         description=description, window=window)
    base.ImageOrientationPatient = [f"{v:.8f}" for v in (*row, *col)]
    base.GantryDetectorTilt = f"{gantry_tilt_deg:g}"
    order = np.arange(slices)
    names = [f"IM{k + 1:05d}.dcm" for k in order]
    if shuffle_names:
        names = [f"{h:08x}.dcm" for h in rng.permutation(2**24)[:slices] * 97 + 13]
    skip = set(int(s) for s in skip)
    written = []
    for k in range(slices):
        hu = _phantom_slice(rows, cols, k / max(slices - 1, 1), rng)
        if k in skip:
            continue
        ds = base.copy()
        sop_uid = generate_uid(root, entropy_srcs=[series_uid, str(k)])
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = str(k + 1)
        pos = origin_v + k * step
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        ds.SliceLocation = f"{float(pos @ normal):.6f}"
        stored = np.clip(np.round(hu + 1024.0), 0, 4095).astype(np.int16)
        ds.PixelData = stored.tobytes()
        ds.file_meta = _file_meta(CT_IMAGE_STORAGE, sop_uid)
        if compression == "rle":
            ds.compress(RLELossless, stored)
        elif compression == "jpeg2000":
            ds.compress(JPEG2000Lossless, stored)
        elif compression is not None:
            raise ValueError(f"unknown compression {compression!r}")
        path = folder / names[k]
        ds.save_as(path, enforce_file_format=True)
        written.append(path)
    return written


def write_enhanced_ct(
    path: Path | str,
    *,
    frames: int = 12,
    rows: int = 64,
    cols: int = 64,
    spacing: Sequence[float] = (0.8, 0.8, 2.0),
    orientation: Sequence[float] = _AXIAL,
    origin: Sequence[float] = (-25.0, -25.0, 10.0),
    frame_order: Sequence[int] | None = None,
    seed: int = 0,
) -> Path:
    """Write one Enhanced CT (multi-frame, functional groups) file; frames stored in ``frame_order``
    (default: reversed, so readers must sort by position, not by frame number)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DSequence
    from pydicom.uid import generate_uid

    path = Path(path)
    rng = np.random.default_rng(seed)
    root = "1.2.826.0.1.3680043.8.498."
    series_uid = generate_uid(root, entropy_srcs=[f"enh{seed}"])
    ds = _base_dataset(series_uid, generate_uid(root, entropy_srcs=[f"enhstudy{seed}"]),
                       generate_uid(root, entropy_srcs=[f"enhframe{seed}"]),
                       sop_class=ENHANCED_CT_IMAGE_STORAGE, rows=rows, cols=cols,
                       pixel_spacing=(spacing[1], spacing[0]), thickness=spacing[2],
                       description="Synthetic enhanced CT", window=(40.0, 400.0))
    for tag in ("PixelSpacing", "RescaleIntercept", "RescaleSlope", "RescaleType", "SliceThickness"):
        delattr(ds, tag)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    sop_uid = generate_uid(root, entropy_srcs=[series_uid, "sop"])
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = "1"
    ds.NumberOfFrames = frames
    row, col, normal, step, origin_v = _geometry(orientation, spacing, origin, 0.0)
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [f"{spacing[1]:g}", f"{spacing[0]:g}"]
    measures.SliceThickness = f"{spacing[2]:g}"
    shared.PixelMeasuresSequence = DSequence([measures])
    orient = Dataset()
    orient.ImageOrientationPatient = [f"{v:.8f}" for v in (*row, *col)]
    shared.PlaneOrientationSequence = DSequence([orient])
    transform = Dataset()
    transform.RescaleIntercept = "-1024"
    transform.RescaleSlope = "1"
    transform.RescaleType = "HU"
    shared.PixelValueTransformationSequence = DSequence([transform])
    ds.SharedFunctionalGroupsSequence = DSequence([shared])
    order = list(frame_order) if frame_order is not None else list(range(frames))[::-1]
    per_frame = []
    pixels = np.empty((frames, rows, cols), np.int16)
    for f, k in enumerate(order):
        item = Dataset()
        plane = Dataset()
        plane.ImagePositionPatient = [f"{v:.6f}" for v in origin_v + k * step]
        item.PlanePositionSequence = DSequence([plane])
        content = Dataset()
        content.InStackPositionNumber = k + 1
        item.FrameContentSequence = DSequence([content])
        per_frame.append(item)
        hu = _phantom_slice(rows, cols, k / max(frames - 1, 1), rng)
        pixels[f] = np.clip(np.round(hu + 1024.0), 0, 4095).astype(np.int16)
    ds.PerFrameFunctionalGroupsSequence = DSequence(per_frame)
    ds.PixelData = pixels.tobytes()
    ds.file_meta = _file_meta(ENHANCED_CT_IMAGE_STORAGE, sop_uid)
    ds.save_as(path, enforce_file_format=True)
    return path


