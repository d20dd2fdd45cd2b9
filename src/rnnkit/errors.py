"""Errors a user can cause. The command line prints their message as one line and exits non-zero."""


class RnnkitError(Exception):
    """Base of every error caused by input rather than by a bug."""


class ConfigError(RnnkitError, ValueError):
    """A configuration that does not match its schema: unknown key, missing key or wrong type."""


class CheckpointError(RnnkitError, ValueError):
    """A run directory that is missing, incomplete, corrupt, from another task, or hostile."""


class DataError(RnnkitError, ValueError):
    """A data file that cannot be used: missing, empty, binary, not UTF-8, malformed, or too short."""


class TrainingError(RnnkitError, RuntimeError):
    """Training that cannot go on, such as a loss that became NaN or infinite."""


class RunLockedError(RnnkitError, RuntimeError):
    """A run directory that another live process is writing (it holds the run's lock)."""
