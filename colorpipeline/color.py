"""Colour management with OpenColorIO 2: which colourspace a frame is in, and conversions.

The generator (paper section 3.2) was trained on display-referred RGB patches in [0, 1]; footage
arrives in whatever space the grading pipeline uses. Frames are converted from their input
colourspace to the model's working space (a name its checkpoint declares), enhanced, and converted
back to the output colourspace. Values outside [0, 1] are carried around the model
(``split_highlights``/``restore_highlights``), never clipped.

Config: ``--ocio-config PATH`` (``ColorConfig.config_path``), else ``$OCIO``, else the built-in
``ocio://studio-config-latest``. Loaded configs and CPU processors are cached.

Input colourspace, first that applies:
1. the name the user gave (``--input-colorspace``);
2. the file's ``oiio:ColorSpace`` metadata, which OpenImageIO 3.2 fills with colour-interop ids such
   as ``lin_rec709_scene``, ``srgb_rec709_scene``, ``lin_ap1_scene``, ``g22_rec709_scene``, or legacy
   names (``Linear``, ``sRGB``, ``Rec709``, ``GammaCorrected2.2``, ``KodakLog``);
3. for EXR, the ``chromaticities`` header (primaries of a linear file);
4. the per-format default below.

Output colourspace: the user's name (``--output-colorspace``), else ``output_colorspace``: the
input's where the output file can hold it (float files linear, integer files display/log
encodings), else the output format's default from the same table.

================  ==============================  ===============================================
Format            Default                         Why
================  ==============================  ===============================================
EXR               Linear Rec.709 (sRGB)           OpenEXR defines a file without chromaticities
                                                  as linear with Rec.709 primaries; ACEScg and
                                                  ACES2065-1 files normally say so in metadata.
PNG, JPEG         sRGB Encoded Rec.709 (sRGB)     the formats' own convention.
TIFF 8/16-bit     sRGB Encoded Rec.709 (sRGB)     the convention of paint and photo software.
TIFF float, PFM,  Linear Rec.709 (sRGB)           float TIFFs from Nuke/Photoshop are linear;
HDR                                               PFM and Radiance HDR are linear by definition.
DPX               Gamma 2.4 Encoded Rec.709       DPX from grading suites is mostly Rec.709 video
                                                  for BT.1886 (gamma 2.4) monitoring.
================  ==============================  ===============================================

Metadata that OpenImageIO 3.2.2 reports but that would mislead (verified by writing and reading
files): DPX transfer code "ITU-R 709-4" reads back as ``srgb_rec709_scene``, and every PFM reads
back as ``Rec709``; those map to the DPX and PFM defaults. DPX "Logarithmic" reads back as
``KodakLog`` (Cineon), which the studio config lacks: the user must name the space.
"""
from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import PyOpenColorIO as ocio

from nightgrade.colorpipeline.errors import ColorError, setting

BUILTIN_CONFIG = "ocio://studio-config-latest"
BUFFER = "buffer"  # ``output_colorspace`` of a host's in-memory image rather than a file

# Each default is a list of spellings so that other OCIO 2 configs (colour-interop ids,
# ACES 1.x-era names) resolve too; the first one the config knows wins.
LINEAR_REC709 = ("Linear Rec.709 (sRGB)", "lin_rec709_scene", "lin_rec709", "lin_srgb",
                 "Utility - Linear - sRGB", "linear")
SRGB_REC709 = ("sRGB Encoded Rec.709 (sRGB)", "srgb_rec709_scene", "srgb_tx", "sRGB - Texture",
               "Utility - sRGB - Texture", "sRGB")
GAMMA24_REC709 = ("Gamma 2.4 Encoded Rec.709", "g24_rec709_scene", "g24_rec709", "rec709_display",
                  "Utility - Rec.709 - Display")
_GAMMA_REC709 = {
    "1.8": ("Gamma 1.8 Encoded Rec.709", "g18_rec709_scene", "g18_rec709"),
    "2.2": ("Gamma 2.2 Encoded Rec.709", "g22_rec709_scene", "g22_rec709"),
    "2.4": GAMMA24_REC709,
}
_CAMERA_REC709 = ("Camera Rec.709", "ocio:itu709_rec709_scene", "rec709_camera",
                  "Utility - Rec.709 - Camera")

_FORMATS = {"exr": "exr", "openexr": "exr", "sxr": "exr", "png": "png", "jpg": "jpeg",
            "jpeg": "jpeg", "jpe": "jpeg", "tif": "tiff", "tiff": "tiff", "dpx": "dpx",
            "pfm": "pfm", "hdr": "hdr", "rgbe": "hdr"}
_DEFAULTS = {"exr": LINEAR_REC709, "png": SRGB_REC709, "jpeg": SRGB_REC709, "tiff": SRGB_REC709,
             "dpx": GAMMA24_REC709, "pfm": LINEAR_REC709, "hdr": LINEAR_REC709}
# OpenImageIO labels that mean something else in a given format (see module docstring).
_MISLEADING_METADATA = {("dpx", "srgb_rec709_scene"): GAMMA24_REC709,
                        ("dpx", "rec709"): GAMMA24_REC709,
                        ("pfm", "rec709"): LINEAR_REC709}
# OpenImageIO's legacy names (pre colour-interop ids) that OCIO configs do not define.
_OIIO_LEGACY = {"linear": LINEAR_REC709, "srgb": SRGB_REC709, "rec709": _CAMERA_REC709}
_LEGACY_GAMMA = re.compile(r"^(?:gammacorrected|gamma)\s*(\d(?:\.\d+)?)$")
_NO_INFORMATION = {"", "unknown"}

# xy of R, G, B, white, as the OpenEXR chromaticities attribute orders them.
_LINEAR_BY_PRIMARIES = (
    ((0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290), LINEAR_REC709),
    ((0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767), ("ACEScg", "lin_ap1_scene")),
    ((0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767),
     ("ACES2065-1", "lin_ap0_scene")),
    ((0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290),
     ("Linear Rec.2020", "lin_rec2020_scene")),
    ((0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290),
     ("Linear P3-D65", "lin_p3d65_scene")),
)
_PRIMARIES_TOLERANCE = 2e-3

# OCIO's default optimisation replaces log/exp/pow with fast approximations (about 4e-5 relative
# error on an sRGB round trip); lossless keeps HDR round trips exact to float precision and was
# measured no slower on 8K frames.
_OPTIMIZATION = ocio.OPTIMIZATION_LOSSLESS
_PIXELS_PER_CHUNK = 1 << 18
_FIX = f"pass {setting('input_colorspace')} NAME (`nightgrade colorspaces` lists them)"
# ExceptionMissingFile does not derive from ocio.Exception.
_OCIO_ERRORS = (ocio.Exception, ocio.ExceptionMissingFile)


@dataclass(frozen=True)
class ColorConfig:
    """Which OCIO config to use: ``config_path`` (``--ocio-config``), else ``$OCIO``, else built-in."""

    config_path: str | None = None


def config_source(path: str | None = None) -> tuple[str, str]:
    """The config to load and where that choice came from (for messages): (path or URI, origin)."""
    if path:
        return _normalise(path), setting("ocio_config")
    env = os.environ.get("OCIO", "").strip()
    if env:
        return _normalise(env), "$OCIO"
    return BUILTIN_CONFIG, "built-in default"


def _normalise(path: str) -> str:
    return path if path.startswith("ocio://") else os.path.abspath(os.path.expanduser(path))


def load_config(path: str | None = None) -> ocio.Config:
    """Load (once per process) the OCIO config chosen by ``config_source``; ColorError if it fails."""
    source, origin = config_source(path)
    try:
        return _load(source)
    except _OCIO_ERRORS as err:
        raise ColorError(f"cannot load OCIO config '{source}' (from {origin}): {_one_line(err)}; "
                         f"fix the path or pass {setting('ocio_config')} with a valid OCIO 2 config") from None


@lru_cache(maxsize=8)
def _load(source: str) -> ocio.Config:
    return ocio.Config.CreateFromFile(source)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def canonical_name(config: ColorConfig, name: str, *, origin: str = setting("input_colorspace"),
                   fix: str = _FIX) -> str:
    """The config's own name for ``name`` (a name, alias, role or OpenImageIO legacy name).

    ColorError listing close matches when the config does not define it; ``origin`` says where
    the name came from and ``fix`` what the user should do, both for that message.
    """
    loaded = load_config(config.config_path)
    found = _lookup(loaded, name)
    if found is None:
        legacy = _legacy_candidates(name)
        found = _first_defined(loaded, legacy) if legacy else None
    if found is None:
        source, _ = config_source(config.config_path)
        raise ColorError(f"unknown colourspace '{name}' (from {origin}) in OCIO config "
                         f"'{source}'; {_close_matches(loaded, name)}; {fix}")
    return found


def resolve_colorspace(config: ColorConfig, name: str | None, metadata_name: str | None,
                       file_format: str, *, is_float: bool = False,
                       chromaticities: Sequence[float] | None = None, source: str = "") -> str:
    """The input colourspace of a file: the user's name, else metadata, else the format default.

    ``file_format`` is an extension or OpenImageIO format name ("exr", ".dpx", "openexr"...);
    ``is_float`` says the file stores floats (selects the linear default for TIFF);
    ``chromaticities`` is the EXR header attribute if present; ``source`` names the file in errors.
    See the module docstring for the rules and the table of defaults.
    """
    if name and name.strip():
        return canonical_name(config, name.strip())
    where = f"metadata of '{source}'" if source else "file metadata"
    fmt = _FORMATS.get(file_format.lower().lstrip("."))
    meta = (metadata_name or "").strip()
    if meta.lower() not in _NO_INFORMATION:
        misleading = _MISLEADING_METADATA.get((fmt or "", meta.lower()))
        if misleading is not None:
            return _required(config, misleading, f"{where} says '{meta}'")
        return canonical_name(config, meta, origin=where)
    if fmt == "exr" and chromaticities is not None:
        return _required(config, _by_primaries(chromaticities, source), "EXR chromaticities")
    if fmt is None:
        raise ColorError(f"no default colourspace for format '{file_format}' "
                         f"({source or 'unnamed file'}); {_FIX}")
    return format_default(config, fmt, is_float=is_float)


def format_default(config: ColorConfig, file_format: str, *, is_float: bool) -> str:
    """The per-format default of the module docstring's table, for input and output alike."""
    fmt = _FORMATS.get(file_format.lower().lstrip("."))
    if fmt is None:
        raise ColorError(f"no default colourspace for format '{file_format}'; {_FIX}")
    default = LINEAR_REC709 if is_float and fmt == "tiff" else _DEFAULTS[fmt]
    return _required(config, default, f"the {fmt.upper()} default")


def is_linear(config: ColorConfig, name: str) -> bool:
    """True for a scene- or display-linear colourspace (by its declared encoding, else by its transform)."""
    loaded = load_config(config.config_path)
    space = loaded.getColorSpace(name)
    if space is None:
        return False
    encoding = space.getEncoding()
    if encoding:
        return encoding in ("scene-linear", "display-linear")
    return any(loaded.isColorSpaceLinear(name, kind)
               for kind in (ocio.REFERENCE_SPACE_SCENE, ocio.REFERENCE_SPACE_DISPLAY))


def output_colorspace(config: ColorConfig, source: str, file_format: str, *, is_float: bool) -> tuple[str, str]:
    """The output rule when the user names no output colourspace: (colourspace, why, for messages).

    Keep the input's colourspace (``source``, a canonical name) where the output file can hold it:
    float files (EXR, float TIFF) hold linear values, integer files (PNG, DPX, 8/16-bit TIFF)
    display or log encodings. Otherwise use the output format's default (the input table above),
    so a display-encoded PNG never lands in an EXR and linear light never in a 16-bit PNG, where
    it would look nearly black. Data spaces (``isData``) are always kept. ``file_format`` ``BUFFER``
    is an OFX host's image (through the daemon): the host reads the result in the colourspace it
    sent, so the input's is always kept.
    """
    if file_format == BUFFER:
        return source, "the input's: a host image buffer is in the host's working colourspace"
    fmt = _FORMATS.get(file_format.lower().lstrip("."), file_format.lower().lstrip("."))
    container = f"{'float' if is_float else 'integer'} {fmt.upper()}"
    loaded = load_config(config.config_path)
    space = loaded.getColorSpace(source)
    linear = is_linear(config, source)
    if (space is not None and space.isData()) or linear == is_float:
        return source, f"the input's: a {container} holds {'linear' if linear else 'encoded'} values"
    target = format_default(config, fmt, is_float=is_float)
    held = "linear" if is_float else "display or log encoded"
    return target, (f"the {fmt.upper()} default: a {container} holds {held} values and the input is "
                    f"{'linear' if linear else 'encoded'}")


def unlabelled_float_default(config: ColorConfig) -> str:
    """The colourspace of float frames that name none: Linear Rec.709, the EXR default above. One
    rule for a file, a daemon request without ``colorspace`` and an OpenFX host without colour
    management, so the same plate looks the same in the host and on the farm."""
    return _required(config, LINEAR_REC709, "float frames that name no colourspace (the EXR default)")


def _by_primaries(chromaticities: Sequence[float], source: str) -> tuple[str, ...]:
    xy = np.asarray(chromaticities, dtype=np.float64).ravel()
    for primaries, names in _LINEAR_BY_PRIMARIES:
        if xy.shape == (8,) and np.all(np.abs(xy - primaries) <= _PRIMARIES_TOLERANCE):
            return names
    shown = ", ".join(f"{v:.4g}" for v in xy)
    raise ColorError(f"EXR chromaticities ({shown}) of '{source or 'unnamed file'}' match no "
                     f"known linear colourspace; {_FIX}")


def _required(config: ColorConfig, candidates: tuple[str, ...], why: str) -> str:
    found = _first_defined(load_config(config.config_path), candidates)
    if found is None:
        source, _ = config_source(config.config_path)
        raise ColorError(f"OCIO config '{source}' has no colourspace for {why} (tried "
                         f"{', '.join(repr(c) for c in candidates)}); {_FIX}")
    return found


def _lookup(loaded: ocio.Config, name: str) -> str | None:
    # getColorSpace resolves names, aliases and roles, case-insensitively.
    space = loaded.getColorSpace(name)
    return space.getName() if space is not None else None


def _first_defined(loaded: ocio.Config, candidates: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        found = _lookup(loaded, candidate)
        if found is not None:
            return found
    return None


def _legacy_candidates(name: str) -> tuple[str, ...]:
    key = name.strip().lower()
    gamma = _LEGACY_GAMMA.match(key)
    if gamma:
        return _GAMMA_REC709.get(f"{float(gamma.group(1)):g}", ())
    return _OIIO_LEGACY.get(key, ())


def _close_matches(loaded: ocio.Config, name: str) -> str:
    spellings: dict[str, str] = {}
    for space in _all_spaces(loaded):
        for spelling in (space.getName(), *space.getAliases()):
            spellings.setdefault(spelling.lower(), space.getName())
    close = difflib.get_close_matches(name.lower(), list(spellings), n=8, cutoff=0.5)
    names = list(dict.fromkeys(spellings[c] for c in close))[:4]
    if not names:
        return "no close match"
    return "close matches: " + ", ".join(repr(n) for n in names)


def _all_spaces(loaded: ocio.Config) -> list[ocio.ColorSpace]:
    return list(loaded.getColorSpaces(ocio.SEARCH_REFERENCE_SPACE_ALL, ocio.COLORSPACE_ALL))


def describe_colorspaces(config: ColorConfig) -> list[str]:
    """One line per colourspace of the config (name, aliases, family, encoding) then its roles."""
    loaded = load_config(config.config_path)
    lines = []
    for space in loaded.getColorSpaces():
        aliases = ", ".join(space.getAliases())
        referred = ("display" if space.getReferenceSpaceType() == ocio.REFERENCE_SPACE_DISPLAY
                    else "scene")
        kind = "/".join(p for p in (space.getFamily(), space.getEncoding(), referred) if p)
        lines.append(f"{space.getName()}  [{kind}]" + (f"  aliases: {aliases}" if aliases else ""))
    lines.extend(f"role {role} -> {space}" for role, space in loaded.getRoles())
    return lines


@lru_cache(maxsize=256)
def _cpu_processor(source: str, src: str, dst: str) -> ocio.CPUProcessor:
    processor = _load(source).getProcessor(src, dst)
    return processor.getOptimizedCPUProcessor(ocio.BIT_DEPTH_F32, ocio.BIT_DEPTH_F32,
                                              _OPTIMIZATION)


def convert(pixels: np.ndarray, src: str, dst: str, config: ColorConfig, *,
            threads: int | None = None) -> np.ndarray:
    """Convert RGB ``pixels`` (shape (..., 3)) from colourspace ``src`` to ``dst``.

    Returns a new float32 array and never modifies ``pixels``. Nothing is clipped by this code:
    values above 1 and below 0 pass through every transform that defines them (the studio
    config's sRGB, gamma, log and matrix transforms do; Canon Log 2/3 and ADX clamp, and ACEScc
    folds negatives, by definition). Rows are processed in chunks on ``threads`` threads (default: the CPUs
    this process may use); OCIO releases the GIL while applying.
    """
    if pixels.ndim < 1 or pixels.shape[-1] != 3:
        raise ValueError(f"convert expects RGB pixels of shape (..., 3), got {pixels.shape}")
    out = np.array(pixels, dtype=np.float32, order="C", copy=True)
    if src == dst or out.size == 0:
        return out
    source, _ = config_source(config.config_path)
    src_name = canonical_name(config, src, origin="conversion source")
    dst_name = canonical_name(config, dst, origin="conversion target")
    try:
        processor = _cpu_processor(source, src_name, dst_name)
    except _OCIO_ERRORS as err:
        raise ColorError(f"OCIO cannot convert '{src}' to '{dst}' with config '{source}': "
                         f"{_one_line(err)}; check the config or pick other colourspaces") from None
    if processor.isNoOp():
        return out
    flat = out.reshape(-1, 3)
    chunks = [flat[i:i + _PIXELS_PER_CHUNK] for i in range(0, len(flat), _PIXELS_PER_CHUNK)]
    workers = min(len(chunks), threads or _usable_cpus())
    if workers <= 1:
        for chunk in chunks:
            processor.applyRGB(chunk)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(processor.applyRGB, chunks))
    return out


def _usable_cpus() -> int:
    # Affinity, not os.cpu_count(): farm jobs are often pinned to a subset of the machine.
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else (os.cpu_count() or 1)


def split_highlights(working: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a working-space image into what the model sees and what is carried around it.

    The HDR rule: the model sees the working image clamped to [0,1]; what lies outside [0,1] is
    carried around the model and added back to its output, so an identity model round-trips HDR
    exactly and highlights keep their energy. Returns (in_range, excess) with
    in_range = clip(working, 0, 1) and excess = working - in_range; neither aliases ``working``.
    """
    in_range = np.clip(working, 0.0, 1.0).astype(np.float32, copy=False)
    excess = (working - in_range).astype(np.float32, copy=False)
    return in_range, excess


def restore_highlights(model_output: np.ndarray, excess: np.ndarray) -> np.ndarray:
    """Add back what ``split_highlights`` carried around the model: model_output + excess.

    The model output is not clipped first, so an identity model gives back the working image.
    """
    if model_output.shape != excess.shape:
        raise ValueError(f"model output {model_output.shape} and excess {excess.shape} differ")
    return (model_output + excess).astype(np.float32, copy=False)
