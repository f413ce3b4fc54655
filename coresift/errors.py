"""Domain errors: each one is a message for the user, never a traceback."""


class CoresiftError(Exception):
    """Base class of errors that are the user's to fix (config, sources, datapool)."""


class ConfigError(CoresiftError):
    """The configuration is invalid; the message names the field."""


class SourceError(CoresiftError):
    """The source cannot be listed or read (missing, unreachable, access denied)."""


class ModelError(CoresiftError):
    """The embedding model cannot be loaded (unknown name, missing weights, bad file)."""


class DatapoolError(CoresiftError):
    """The datapool cannot be read or written."""


class DatapoolBusyError(DatapoolError):
    """Another run holds the datapool, or committed to it while this run was processing."""


class MediaError(Exception):
    """An object's bytes are not a usable image; the message is the recorded corrupt reason."""
