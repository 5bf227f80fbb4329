"""DICOM Segmentation (SEG) objects: writing labels for a PACS, and reading them back onto the CT grid.

The IOD is written and read by ``highdicom`` (made for exactly these objects; nothing is hand-written
here). What a SEG written here holds:

- one BINARY segment per label: its name (SegmentLabel), colour (RecommendedDisplayCIELabValue), SNOMED
  category "Morphologically abnormal structure" and type "Lesion" (or "Cyst" / "Neoplasm" when the
  annotation gives that lesion type), the referring expression (SegmentDescription), the label's id
  (TrackingID ``label N``, so a round trip keeps the mask's values), and how it was made: AUTOMATIC with
  the algorithm "LSMS" and the checkpoint's name as its version for a model's mask, SEMIAUTOMATIC for a
  model mask edited by hand, MANUAL for a hand-drawn one;
- one frame per source image and segment, on the source images' own pixel grid, with each frame's
  ImagePositionPatient equal to its source image's and a reference to it (SourceImageSequence); the
  source series and every instance are referenced (ReferencedSeriesSequence); new Series and SOP
  Instance UIDs; the source's Frame of Reference UID (required: it says the frames share the CT's space);
- of the patient and study, only what the SEG must carry to be filed with its CT (see ``KEPT_PATIENT``):
  the Patient module's Type 2 attributes and the General Study module's Type 1/2 attributes. Everything
  else highdicom copies from the source (age, weight, size, comments, other IDs, study description,
  physicians, clinical-trial attributes...) is removed before writing.

Empty frames are written too, so a SEG holds the whole grid of its source series and ``lsms convert
mask.dcm mask.nii.gz`` can rebuild that grid without the CT. The cost: BINARY segments must be stored
uncompressed (1 bit per pixel), so each segment takes rows x columns / 8 bytes per slice (5 MB for one
label on a 151-slice 512x512 series).
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.errors import VolumeError
from lsms_core.volume.orient import from_source_array, to_source_array
from lsms_core.volume.volume import Volume
from lsms_core.volume.write import check_output_file

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
LABELMAP_SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.7"
AUTOMATIC, SEMIAUTOMATIC, MANUAL = "AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"
SEG_EXTENSIONS = (".dcm", ".dicom")

# What of the patient and study a SEG keeps (copied from its source images, nothing else):
# Patient module, all Type 2 (required, may be empty): a PACS files the SEG under the patient by them.
# General Study module, Type 1 and 2: the SEG must be in the study of the series it segments.
KEPT_PATIENT = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
KEPT_STUDY = ("StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
              "AccessionNumber")
# Attributes of the General Study module (Type 3) highdicom may copy and a SEG does not need.
_STUDY_OPTIONAL = (
    "StudyDescription", "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence",
    "ReferringPhysicianIdentificationSequence", "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence", "RequestingServiceCodeSequence",
    "ReferencedStudySequence", "ProcedureCodeSequence", "ReasonForPerformedProcedureCodeSequence",
    "IssuerOfAccessionNumberSequence", "AdmittingDiagnosesDescription", "AdmittingDiagnosesCodeSequence",
    "ConsultingPhysicianName", "ConsultingPhysicianIdentificationSequence", "StudyIDIssuer",
    "RequestingService", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
)
_TRACKING = re.compile(r"^label (\d+)$")


@dataclass
class SegSegment:
    """One label to write as a segment. ``mask`` is boolean on the LOADED grid of the reference CT."""

    mask: np.ndarray
    name: str
    color: tuple[int, int, int] = (230, 25, 75)
    expression: str = ""
    algorithm: str = MANUAL  # AUTOMATIC (model mask), SEMIAUTOMATIC (model mask edited), MANUAL
    checkpoint: str = ""  # the model's checkpoint name, for AUTOMATIC and SEMIAUTOMATIC
    lesion_type: str = ""  # the annotation's lesion type (cyst, hemangioma, hcc, metastasis, fnh)
    label_id: int | None = None


@dataclass
class SegLabel:
    """A segment read back from a SEG."""

    number: int
    label_id: int
    name: str
    color: tuple[int, int, int]
    expression: str
    algorithm: str
    algorithm_name: str = ""
    algorithm_version: str = ""
    category: str = ""
    type: str = ""


@dataclass
class SegRead:
    """A SEG read onto a grid: one boolean mask per segment (same order as ``labels``)."""

    labels: list[SegLabel]
    masks: list[np.ndarray]
    series_uid: str
    notes: list[str] = field(default_factory=list)

    def label_map(self, what) -> np.ndarray:
        """One uint8/uint16 array whose values are the label ids; overlapping segments are refused (a voxel
        holds one value: writing one would lose the other silently)."""
        top = max((lab.label_id for lab in self.labels), default=0)
        out = np.zeros(self.masks[0].shape if self.masks else (0, 0, 0), np.uint8 if top <= 255 else np.uint16)
        for lab, mask in zip(self.labels, self.masks, strict=True):
            clash = out[mask] != 0
            if clash.any():
                other = next(x for x in self.labels if x.label_id == int(out[mask][clash][0]))
                raise VolumeError(what, f"segments {other.name!r} and {lab.name!r} overlap on "
                                        f"{int(clash.sum())} voxels, which one label map cannot hold; "
                                        "write each segment to its own file")
            out[mask] = lab.label_id
        return out


def is_seg_path(path: Path | str) -> bool:
    """True when ``path`` names a DICOM file output (``.dcm``/``.dicom``)."""
    return Path(path).name.lower().endswith(SEG_EXTENSIONS)


def is_seg_file(path: Path | str) -> bool:
    """True when ``path`` is a readable DICOM Segmentation object."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:
        return False
    return str(ds.get("SOPClassUID", "")) in (SEG_SOP_CLASS, LABELMAP_SEG_SOP_CLASS)


def _codes(lesion_type: str):
    from pydicom.sr.codedict import codes

    kind = (lesion_type or "").lower()
    if kind == "cyst":
        typ = codes.SCT.Cyst
    elif kind in ("hcc", "metastasis", "hemangioma"):
        typ = codes.SCT.Neoplasm
    else:
        typ = codes.SCT.Lesion
    return codes.SCT.MorphologicallyAbnormalStructure, typ


# ------------------------------------------------------------------------------------------ the source


@dataclass
class _SourceImage:
    path: Path
    k: int
    dataset: object


def _source_images(reference: Volume, what) -> tuple[list[_SourceImage], str]:
    """The reference's DICOM images (headers only), each with its slice index on the source grid."""
    import pydicom

    grid = reference.source_grid
    series_uid = str(reference.meta.get("series_uid", ""))
    if grid is None or reference.meta.get("format") != "DICOM" or not series_uid or not grid.files:
        src = reference.source.name if reference.source is not None else "an image built in memory"
        raise VolumeError(what, f"a DICOM SEG refers to the images of a DICOM series; the CT was read from {src}, "
                                "not a DICOM series (write a NIfTI, NRRD or MHA mask instead)")
    rows, cols = grid.shape[1], grid.shape[2]
    linear = grid.direction * np.asarray(grid.spacing)[None, :]
    inverse = np.linalg.inv(linear)
    origin = np.asarray(grid.origin)
    images: list[_SourceImage] = []
    for path in grid.files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception as exc:
            raise VolumeError(path, f"cannot re-read this image of the CT series: {exc}") from exc
        if str(ds.get("SeriesInstanceUID", "")) != series_uid or "ImagePositionPatient" not in ds:
            continue
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise VolumeError(what, f"{path.name} is a multi-frame image; DICOM SEG export here supports "
                                    "series of single-frame images (CT Image Storage)")
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            continue  # left out of the volume by the loader (another size)
        ijk = inverse @ (np.asarray([float(v) for v in ds.ImagePositionPatient]) - origin)
        k = int(round(float(ijk[2])))
        if abs(ijk[0]) > 1e-2 or abs(ijk[1]) > 1e-2 or abs(ijk[2] - k) > 1e-2 or not 0 <= k < grid.shape[0]:
            continue  # not on the grid the loader kept (a dropped block, a duplicate at another position)
        images.append(_SourceImage(Path(path), k, ds))
    seen: dict[int, _SourceImage] = {}
    for img in sorted(images, key=lambda s: (s.k, int(s.dataset.get("InstanceNumber", 0) or 0), str(s.path))):
        seen.setdefault(img.k, img)  # a duplicate position: the loader kept one image there
    if not seen:
        raise VolumeError(what, "none of the CT series' files lies on the loaded grid")
    return [seen[k] for k in sorted(seen)], series_uid


# ------------------------------------------------------------------------------------------ writing


def _prune_patient_data(seg, source) -> list[str]:
    """Remove what highdicom copied of the patient/study beyond KEPT_*; return the kept keywords."""
    kept = set(KEPT_PATIENT) | set(KEPT_STUDY)
    for elem in list(seg):
        group = elem.tag.group
        kw = elem.keyword
        if kw in kept:
            continue
        if group in (0x0010, 0x0012, 0x0032, 0x0038) or kw in _STUDY_OPTIONAL:
            del seg[elem.tag]
    return [kw for kw in (*KEPT_PATIENT, *KEPT_STUDY) if kw in seg]


def _frame_of_reference(sources: list[_SourceImage], series_uid: str, notes: list[str]) -> list:
    """The source headers as highdicom gets them. A SEG must carry a Frame of Reference UID; series
    without one (anonymised exports such as 3D-IRCADb) get one derived from their series UID, the same for
    every SEG of that series, and the note says so."""
    from pydicom.uid import generate_uid

    datasets = [s.dataset for s in sources]
    if all("FrameOfReferenceUID" in ds and str(ds.FrameOfReferenceUID) for ds in datasets):
        return datasets
    uid = generate_uid(entropy_srcs=["lsms frame of reference", series_uid])
    notes.append(f"the CT series has no Frame of Reference UID; the SEG uses {uid}, derived from the "
                 "series UID (viewers match it to the CT by the referenced series and images)")
    out = []
    for ds in datasets:
        ds = ds.copy()
        if not str(ds.get("FrameOfReferenceUID", "")):
            ds.FrameOfReferenceUID = uid
        out.append(ds)
    return out


def build_seg(segments: Sequence[SegSegment], reference: Volume, what, *, series_number: int = 900,
              description: str = "LSMS lesion labels", notes: list[str] | None = None):
    """The highdicom Segmentation of ``segments`` for the DICOM series ``reference`` was loaded from;
    what the user should know is appended to ``notes``."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from lsms_core import __version__

    if not segments:
        raise VolumeError(what, "no labels to write")
    notes = notes if notes is not None else []
    sources, series_uid = _source_images(reference, what)
    grid = reference.source_grid
    rows, cols = grid.shape[1], grid.shape[2]
    pixels = np.zeros((len(sources), rows, cols, len(segments)), bool)
    by_k = {s.k: n for n, s in enumerate(sources)}
    descriptions = []
    for number, segment in enumerate(segments, start=1):
        mask = np.asarray(segment.mask)
        if mask.shape != reference.shape:
            raise VolumeError(what, f"label {segment.name!r}: mask shape {mask.shape} differs from the CT's "
                                    f"{reference.shape}")
        on_source = to_source_array(mask.astype(bool, copy=False), grid)
        held = np.flatnonzero(on_source.reshape(on_source.shape[0], -1).any(axis=1))
        orphans = [int(k) for k in held if int(k) not in by_k]
        if orphans:
            raise VolumeError(what, f"label {segment.name!r} has voxels on {len(orphans)} slice(s) of the loaded "
                                    f"grid with no DICOM image (e.g. source slice {orphans[0]}, filled in for a "
                                    "gap in the series); a SEG can only refer to real images")
        for k in held:
            pixels[by_k[int(k)], :, :, number - 1] = on_source[k]
        category, typ = _codes(segment.lesion_type)
        algorithm = segment.algorithm if segment.algorithm in (AUTOMATIC, SEMIAUTOMATIC, MANUAL) else MANUAL
        ident = None
        if algorithm != MANUAL:
            ident = hd.AlgorithmIdentificationSequence(
                name="LSMS", family=codes.DCM.ArtificialIntelligence,
                version=(segment.checkpoint or "unknown checkpoint")[:64], source="LSMS Viewer")
        label_id = segment.label_id if segment.label_id is not None else number
        desc = hd.seg.SegmentDescription(
            segment_number=number, segment_label=(segment.name or f"label {label_id}")[:64],
            segmented_property_category=category, segmented_property_type=typ, algorithm_type=algorithm,
            algorithm_identification=ident, tracking_uid=hd.UID(), tracking_id=f"label {label_id}",
            display_color=hd.color.CIELabColor.from_rgb(*(int(c) for c in segment.color)))
        if segment.expression:
            desc.SegmentDescription = segment.expression[:1024]
        descriptions.append(desc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            seg = hd.seg.Segmentation(
                source_images=_frame_of_reference(sources, series_uid, notes), pixel_array=pixels,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
                series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(),
                instance_number=1, manufacturer="LSMS Viewer", manufacturer_model_name="LSMS Viewer",
                software_versions=f"lsms-viewer {__version__}", device_serial_number="none",
                series_description=description[:64], content_label="LSMS_LABELS",
                content_description=description[:64], omit_empty_frames=False)
        except (ValueError, TypeError, AttributeError) as exc:
            raise VolumeError(what, f"cannot build the DICOM SEG: {exc}") from exc
    _prune_patient_data(seg, sources[0].dataset)
    return seg


def _check_seg_target(path: Path, reference: Volume, overwrite: bool) -> None:
    if not is_seg_path(path):
        raise VolumeError(path, "a DICOM SEG is written to a .dcm file")
    check_output_file(path, reference, [path])
    if not overwrite and path.exists():
        raise VolumeError(path, "exists already; pass --overwrite to replace it (or choose another name)")


def check_seg_target(path: Path | str, reference: Volume, *, overwrite: bool = True) -> Path:
    """Refuse, before any work, an output ``save_seg`` would refuse (not .dcm, folder missing or read-only,
    an input file, an existing file without ``overwrite``, a CT that is not a DICOM series)."""
    path = Path(path)
    _check_seg_target(path, reference, overwrite)
    if reference.source_grid is None or reference.meta.get("format") != "DICOM":
        _source_images(reference, path)  # raises with the reason
    return path


def save_seg(segments: Sequence[SegSegment], reference: Volume, path: Path | str, *, overwrite: bool = True,
             description: str = "LSMS lesion labels", notes: list[str] | None = None) -> Path:
    """Write ``segments`` as one DICOM SEG file referring to the series ``reference`` was loaded from.

    Atomic like the project's other writers: written under a temporary name in the target folder, fsynced,
    then renamed; a failure leaves the target as it was.
    """
    from lsms_core.volume.write import _partial_name, remove_stale_partials

    path = Path(path)
    _check_seg_target(path, reference, overwrite)
    seg = build_seg(segments, reference, path, description=description, notes=notes)
    folder = path.parent if str(path.parent) else Path(".")
    remove_stale_partials(folder)
    tmp = folder / _partial_name(path.name)
    try:
        with open(tmp, "wb") as fp:
            seg.save_as(fp, enforce_file_format=True)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, path)
    except (OSError, ValueError) as exc:
        raise VolumeError(path, f"cannot write: {exc}") from exc
    finally:
        if tmp.exists():
            with contextlib.suppress(OSError):
                tmp.unlink()
    return path


# ------------------------------------------------------------------------------------------ reading


def _read(path: Path):
    import highdicom as hd

    if not path.is_file():
        raise VolumeError(path, "does not exist" if not path.exists() else "is not a file")
    if not is_seg_file(path):
        raise VolumeError(path, "not a DICOM Segmentation (SEG) object")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = hd.seg.segread(path)
            frames = np.asarray(seg.pixel_array)
    except Exception as exc:
        raise VolumeError(path, f"cannot read the DICOM SEG ({type(exc).__name__}: {exc})") from exc
    if frames.ndim == 2:
        frames = frames[None]
    return seg, frames


def _rgb(desc) -> tuple[int, int, int]:
    import highdicom as hd

    lab = desc.get("RecommendedDisplayCIELabValue")
    if lab is None:
        return (230, 25, 75)
    try:
        return tuple(int(c) for c in hd.color.CIELabColor.from_dicom_value(lab).to_rgb())
    except Exception:
        return (230, 25, 75)


def _labels(seg) -> list[SegLabel]:
    out = []
    used: set[int] = set()
    for desc in seg.SegmentSequence:
        number = int(desc.SegmentNumber)
        match = _TRACKING.match(str(desc.get("TrackingID", "")))
        label_id = int(match.group(1)) if match else number
        if label_id in used or not 0 < label_id <= 65535:
            label_id = number
        used.add(label_id)
        name = version = ""
        ident = desc.get("SegmentationAlgorithmIdentificationSequence") or \
            desc.get("AlgorithmIdentificationSequence")
        if ident:
            name = str(ident[0].get("AlgorithmName", ""))
            version = str(ident[0].get("AlgorithmVersion", ""))
        cat = desc.get("SegmentedPropertyCategoryCodeSequence")
        typ = desc.get("SegmentedPropertyTypeCodeSequence")
        out.append(SegLabel(
            number=number, label_id=label_id, name=str(desc.get("SegmentLabel", f"segment {number}")),
            color=_rgb(desc), expression=str(desc.get("SegmentDescription", "")),
            algorithm=str(desc.get("SegmentAlgorithmType", "")), algorithm_name=name, algorithm_version=version,
            category=str(cat[0].CodeMeaning) if cat else "", type=str(typ[0].CodeMeaning) if typ else ""))
    return out


def _frame_info(seg, n: int, frames: np.ndarray, path: Path):
    """(ImagePositionPatient, segment number) of frame ``n``."""
    def item(name):
        for groups, index in (("PerFrameFunctionalGroupsSequence", n), ("SharedFunctionalGroupsSequence", 0)):
            seq = seg.get(groups)
            if seq is not None and len(seq) > index and name in seq[index]:
                return seq[index][name][0]
        return None

    plane = item("PlanePositionSequence")
    ident = item("SegmentIdentificationSequence")
    if plane is None:
        raise VolumeError(path, f"frame {n + 1} has no ImagePositionPatient (PlanePositionSequence)")
    number = int(ident.ReferencedSegmentNumber) if ident is not None else None
    return np.asarray([float(v) for v in plane.ImagePositionPatient]), number


def _frame_masks(seg, frames: np.ndarray, n: int, number: int | None, labels: list[SegLabel], notes: list[str],
                 path: Path):
    """{segment number: boolean frame} of frame ``n``, whatever the SEG type."""
    kind = str(seg.get("SegmentationType", "BINARY")).upper()
    frame = frames[n]
    if kind == "LABELMAP":
        return {lab.number: frame == lab.number for lab in labels}
    if number is None:
        raise VolumeError(path, f"frame {n + 1} names no segment (SegmentIdentificationSequence)")
    if kind == "FRACTIONAL":
        top = float(seg.get("MaximumFractionalValue", 255) or 255)
        if not notes:
            notes.append("fractional segments were cut at half their maximum value")
        return {number: frame >= top / 2}
    return {number: frame.astype(bool)}


def _referenced_series(seg) -> list[str]:
    return [str(item.SeriesInstanceUID) for item in (seg.get("ReferencedSeriesSequence") or [])]


def load_seg(path: Path | str, reference: Volume) -> SegRead:
    """Read the SEG ``path`` onto the LOADED grid of ``reference`` (the CT it was made for).

    Refused, with the reason: a SEG of another series or another frame of reference, frames whose pixel
    grid or orientation differ from the CT's, or a frame that lies between the CT's slices.
    """
    path = Path(path)
    seg, frames = _read(path)
    grid = reference.source_grid
    ct_series = str(reference.meta.get("series_uid", ""))
    if grid is None or reference.meta.get("format") != "DICOM" or not ct_series:
        src = reference.source.name if reference.source is not None else "an image built in memory"
        raise VolumeError(path, f"a DICOM SEG refers to the images of a DICOM series; the open CT was read from "
                                f"{src}: open the DICOM series it was made for")
    referenced = _referenced_series(seg)
    if ct_series not in referenced:
        shown = ", ".join(referenced) or "none named"
        raise VolumeError(path, f"this SEG was made for another series ({shown}); the open CT is series "
                                f"{ct_series}")
    return _onto_grid(seg, frames, path, grid.shape, grid.origin, grid.spacing, grid.direction,
                      lambda a: from_source_array(a, grid), ct_series)


def _onto_grid(seg, frames, path: Path, shape, origin, spacing, direction, to_loaded, series_uid) -> SegRead:
    labels = _labels(seg)
    if (int(seg.Rows), int(seg.Columns)) != tuple(shape[1:]):
        raise VolumeError(path, f"its frames are {seg.Rows}x{seg.Columns}, the CT's slices {shape[1]}x{shape[2]}")
    shared = seg.get("SharedFunctionalGroupsSequence")
    try:
        orient = shared[0].PlaneOrientationSequence[0].ImageOrientationPatient
        spacing_rc = shared[0].PixelMeasuresSequence[0].PixelSpacing
        iop = np.asarray([float(v) for v in orient])
        if not np.allclose(iop, np.concatenate([direction[:, 0], direction[:, 1]]), atol=1e-4):
            raise VolumeError(path, f"its frames' orientation {iop.round(5).tolist()} differs from the CT's")
        if not np.allclose([float(spacing_rc[1]), float(spacing_rc[0])], spacing[:2], rtol=1e-4, atol=1e-5):
            raise VolumeError(path, f"its pixel spacing {[float(v) for v in spacing_rc]} differs from the CT's "
                                    f"{[spacing[1], spacing[0]]}")
    except (AttributeError, IndexError, TypeError, KeyError):
        pass  # per-frame geometry only: positions are still checked frame by frame below
    linear = np.asarray(direction) * np.asarray(spacing)[None, :]
    inverse = np.linalg.inv(linear)
    masks = {lab.number: np.zeros(tuple(shape), bool) for lab in labels}
    notes: list[str] = []
    for n in range(frames.shape[0]):
        ipp, number = _frame_info(seg, n, frames, path)
        ijk = inverse @ (ipp - np.asarray(origin))
        k = int(round(float(ijk[2])))
        if abs(ijk[0]) > 1e-2 or abs(ijk[1]) > 1e-2 or abs(ijk[2] - k) > 1e-2 or not 0 <= k < shape[0]:
            raise VolumeError(path, f"frame {n + 1} at {ipp.round(3).tolist()} mm is not on a slice of the CT")
        for num, plane in _frame_masks(seg, frames, n, number, labels, notes, path).items():
            if num not in masks:
                raise VolumeError(path, f"frame {n + 1} refers to segment {num}, which the SEG does not describe")
            masks[num][k] |= plane
    return SegRead(labels, [to_loaded(masks[lab.number]) for lab in labels], series_uid, notes)


def seg_grid_volume(path: Path | str) -> tuple[Volume, SegRead]:
    """The SEG's own grid (its frames' positions, one slice per distinct position) as a Volume holding
    zeros, and its segments on that grid: what ``lsms convert`` writes when no CT is given. Refused when
    the frames do not lie on one evenly spaced stack (then convert with the CT)."""
    path = Path(path)
    seg, frames = _read(path)
    try:
        shared = seg.SharedFunctionalGroupsSequence[0]
        iop = np.asarray([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient])
        spacing_rc = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    except (AttributeError, IndexError, KeyError) as exc:
        raise VolumeError(path, "no shared orientation and pixel spacing; convert it with the CT (--ct)") from exc
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    positions = np.stack([_frame_info(seg, n, frames, path)[0] for n in range(frames.shape[0])])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    distinct = [order[0]]
    for n in order[1:]:
        if abs(along[n] - along[distinct[-1]]) > 1e-3:
            distinct.append(n)
    steps = np.diff(along[distinct])
    if len(distinct) > 1:
        step = float(np.median(steps))
        if step <= 0 or np.abs(steps - step).max() > 1e-2 * step + 1e-3:
            raise VolumeError(path, f"its frames are not evenly spaced ({steps.min():.3f} to {steps.max():.3f} mm "
                                    "apart; a SEG may leave out empty slices): convert it with the CT (--ct CT)")
        k_dir = (positions[distinct[-1]] - positions[distinct[0]]) / (len(distinct) - 1)
    else:
        step, k_dir = 1.0, normal.copy()
    spacing = (spacing_rc[1], spacing_rc[0], float(np.linalg.norm(k_dir)))
    direction = np.column_stack([row, col, k_dir / np.linalg.norm(k_dir)])
    origin = tuple(positions[distinct[0]])
    shape = (len(distinct), int(seg.Rows), int(seg.Columns))
    series = _referenced_series(seg)
    read = _onto_grid(seg, frames, path, shape, origin, spacing, direction, lambda a: a,
                      series[0] if series else "")
    vol = Volume(np.zeros(shape, np.uint8), spacing, origin, direction, {"format": "DICOM SEG"}, path)
    return vol, read


__all__ = ["SegSegment", "SegLabel", "SegRead", "save_seg", "load_seg", "build_seg", "seg_grid_volume",
           "check_seg_target", "is_seg_path", "is_seg_file", "AUTOMATIC", "SEMIAUTOMATIC", "MANUAL",
           "KEPT_PATIENT", "KEPT_STUDY"]
