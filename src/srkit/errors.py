"""Exceptions that reach the user as one clear line (the CLI prints them without a traceback)."""


class SrkitError(Exception):
    """A user-facing error: bad input, bad config, missing file. The message names the culprit."""


class ImageReadError(SrkitError):
    """A file that is missing, corrupt, or not an image."""


class ImageTooLargeError(ImageReadError):
    """An image whose pixel count exceeds the reader's limit (the decompression-bomb guard)."""


class ConfigError(SrkitError):
    """An unknown, missing or mistyped configuration key or value."""


class CheckpointError(SrkitError):
    """A checkpoint that does not fit the architecture it is loaded into."""
