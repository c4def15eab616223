"""capeval: image-caption evaluation that tells the truth about caption quality."""

__version__ = "0.1.0"
