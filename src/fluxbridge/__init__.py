"""fluxbridge: land NEE from eddy-covariance towers, constrained by atmospheric inversions."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fluxbridge")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
