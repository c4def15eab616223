"""Caption file I/O: readers for every common caption format with auto-detection, COCO writers, and checks.

Every reader yields a CaptionSet whose captions keep a stable id (the COCO annotation id or Karpathy sentid
where the file has one, else `<image_id>#<k>`) and a normalised image id. `load()` is the one entry point: files, dataset names, URLs and Python data. Bad input raises InputError naming
the file, the line or JSON path, and what was expected.
"""

from capeval.io._source import InputWarning
from capeval.io.check import check_candidates
from capeval.io.load import CAPTION_SUFFIXES, FORMATS, detect_format, load, load_captions, system_name
from capeval.io.readers import flickr8k_caption_id
from capeval.io.writers import write_coco_annotations, write_coco_results

__all__ = [
    "CAPTION_SUFFIXES",
    "FORMATS",
    "InputWarning",
    "check_candidates",
    "detect_format",
    "flickr8k_caption_id",
    "load",
    "load_captions",
    "system_name",
    "write_coco_annotations",
    "write_coco_results",
]
