"""The one error type for data files: unreadable, corrupt, or impossible to download."""


class DataError(RuntimeError):
    """A data file failed its checksum, does not parse, or could not be downloaded.

    The message names the file and says what to do about it.
    """
